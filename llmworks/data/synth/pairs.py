"""Sampled responses to rank: k replies per prompt, each with its own seed, for annotation or a judge."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from llmworks.client import Client


def sample_pairs(
    client: Client,
    prompts: Iterable[list[dict[str, str]]],
    k: int = 2,
    temperature: float = 0.8,
    max_tokens: int = 256,
    seed: int = 0,
) -> Iterator[dict[str, Any]]:
    """{"prompt": messages, "responses": [k replies]} per prompt; `llmworks data annotate` ranks them."""
    for i, prompt in enumerate(prompts):
        responses = [
            client.chat(
                prompt, max_tokens=max_tokens, temperature=temperature, top_p=0.95, seed=seed + i * k + j
            ).content
            or ""
            for j in range(k)
        ]
        yield {"prompt": prompt, "responses": responses}
