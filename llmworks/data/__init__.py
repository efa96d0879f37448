"""The data stage: parse, convert, clean, stats, synth, mix, annotate. Every step streams records."""
