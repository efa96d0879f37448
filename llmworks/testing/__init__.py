"""Helpers for tests and benchmarks: tiny random models with the embedded model's real tokenizer."""
