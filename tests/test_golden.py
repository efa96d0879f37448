"""The embedded model's greedy answers to the shipped test prompts vs `tests/golden_greedy.json`, recorded from
the portable x86-64-v3 build of llama-cpp-python with 2 threads.

A change of build or numerics shows up here as what it is. On another build (`make install LLAMA_CPU=native`,
another llama-cpp-python) the comparison is skipped, saying which build is installed: near-ties may flip there,
and the other real-model tests assert only what holds with margin. Re-record after a deliberate change:

    .venv/bin/python -m llmworks.testing.golden --record
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llmworks.testing import golden


def test_the_golden_file_covers_the_shipped_prompts() -> None:
    recorded = golden.load_golden()
    keys = [golden.conversation_key(g["messages"]) for g in recorded["answers"]]
    assert keys == [golden.conversation_key(c) for c in golden.golden_conversations()], (
        "the test prompts changed: re-record with python -m llmworks.testing.golden --record"
    )
    assert recorded["build"] == golden.PORTABLE and recorded["threads"] == golden.THREADS


def test_a_changed_answer_is_listed() -> None:
    recorded = golden.load_golden()
    answers = [
        golden.Answer(g["messages"], g["answer"], g["finish"], g["min_gap"]) for g in recorded["answers"]
    ]
    assert golden.changed(answers, recorded) == []
    answers[4].text = "The capital of France is Lyon."
    (line,) = golden.changed(answers, recorded)
    assert (
        line.startswith(repr(golden.capital_question("France")))
        and "now 'The capital of France is Lyon.'" in line
    )


def test_the_build_is_named() -> None:
    build = golden.llama_cpp_build()
    assert build == golden.PORTABLE or build.endswith(f"(not {golden.PORTABLE})")


@pytest.mark.slow
def test_greedy_answers_are_the_recorded_ones(embedded_gguf: Path) -> None:
    recorded = golden.load_golden()
    here = golden.build_info()
    if (here["build"], here["llama_cpp_python"]) != (recorded["build"], recorded["llama_cpp_python"]):
        pytest.skip(
            f"llama-cpp-python {here['llama_cpp_python']} here is built for {here['build']}; the golden answers "
            f"come from {recorded['llama_cpp_python']} built for {recorded['build']} (what `make install` builds "
            "and CI uses), and greedy near-ties may differ between builds"
        )
    changed = golden.changed(golden.greedy_answers(), recorded)
    assert not changed, (
        f"greedy answers differ from the recorded ones on the same build ({recorded['build']}, "
        f"{golden.THREADS} threads): the numerics changed. If that is intended, re-record "
        "(python -m llmworks.testing.golden --record).\n" + "\n".join(changed)
    )
