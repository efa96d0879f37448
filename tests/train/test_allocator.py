"""The training loop's allocator setting takes on this glibc machine (its effect, ~300,000 fewer page faults
per SmolLM2 LoRA step, is measured by bench/train.py, not asserted: fault counts depend on process history)."""

from __future__ import annotations

from llmworks.train.allocator import keep_freed_memory


def test_mallopt_accepts_the_settings() -> None:
    assert keep_freed_memory()
