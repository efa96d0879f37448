"""Synthetic data: self-cognition, Self-Instruct, and sampled response pairs for ranking."""
