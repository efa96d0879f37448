"""Talk to a model from the terminal: `llmworks chat` (interactive) and `llmworks generate` (one shot)."""
