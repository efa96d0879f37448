"""llmworks: data -> fine-tune -> export -> serve -> evaluate -> apps, for open LLMs, offline on a CPU."""

__version__ = "0.1.0"
