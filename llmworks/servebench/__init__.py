"""Benchmarks of running stages: `llmworks bench serve` measures any OpenAI-compatible server."""
