"""`import llmworks` bounds libgomp's spinning before llama.cpp loads it (bench/contention.py measures why),
and leaves a value the user set alone."""

from __future__ import annotations

import os
import subprocess
import sys


def _spin_seen_by_llama_cpp(env: dict[str, str]) -> str:
    code = "import llmworks, llama_cpp, os; print(os.environ['GOMP_SPINCOUNT'])"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_llmworks_sets_a_bounded_spin_count_unless_the_user_did() -> None:
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    assert int(_spin_seen_by_llama_cpp(env)) <= 50_000
    assert _spin_seen_by_llama_cpp({**env, "GOMP_SPINCOUNT": "123"}) == "123"
