"""Golden greedy answers of the embedded model: which llama.cpp build is installed, and do its answers to
the shipped test prompts match the ones recorded from the portable build?

A tiny model's greedy path can flip at a near-tie when the kernels change (another instruction set, another
thread count, another llama.cpp), so the real-model tests assert what holds with margin, and this file pins
the rest: `tests/test_golden.py` compares the answers below with `tests/golden_greedy.json`.

    .venv/bin/python -m llmworks.testing.golden                # compare with the recorded answers
    .venv/bin/python -m llmworks.testing.golden --record       # re-record (only on the portable build)
    .venv/bin/python -m llmworks.testing.golden --json out.json  # this build's answers (any build)
    .venv/bin/python -m llmworks.testing.golden --golden out.json  # compare two builds' answers

Each answer is recorded with its smallest top-1/top-2 log-probability gap: a prompt whose gap is tiny is
one a change of numerics flips first.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmworks.chat.check import PROMPTS as CHECK_PROMPTS

PORTABLE = "x86-64-v3"
"""The instruction set `make install` builds llama-cpp-python for on x86-64 (CI and the tests use it)."""
PORTABLE_FLAGS = frozenset({"SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2"})
THREADS = 2
MAX_TOKENS = 64
GOLDEN = Path(__file__).resolve().parents[2] / "tests" / "golden_greedy.json"

# The prompts the real-model tests ask (tests/test_embedded.py, tests/serve/, tests/data/test_synth.py) and
# what they expect. Each was picked for a comfortable top-1/top-2 log-probability gap along its answer on the
# portable build (0.6-1.2 nats; see `min_gap` in tests/golden_greedy.json), where "What is the capital of
# France?" alone rambles in French.
CAPITALS = {"France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Japan": "Tokyo"}


def capital_question(country: str) -> str:
    return f"What is the capital of {country}? Answer in one word."


FOLLOW_UP = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "The capital of France is Paris."},
    {"role": "user", "content": "What is the capital of Germany?"},
]
"""A second turn after a first (answer: Berlin, by a gap of 3 nats)."""
JSON_PROMPT = "Give the name and age of a fictional person as JSON."
REPEAT_PROMPT = "Write the word dog twenty times."
COUNT_PROMPT = "Count from 1 to 200, one number per line."
"""Cannot be finished in a few dozen tokens: a prompt that runs into max_tokens on any build."""
WEAK_PROMPTS = ("What is the capital of France?", "What is 17 times 23?")
"""Where the 135M model is weak (the demo shows them): without "Answer in one word." it rambles in French;
arithmetic beyond a single digit it gets wrong (17 x 23 = 391)."""


def golden_conversations() -> list[list[dict[str, str]]]:
    """Every conversation whose greedy answer is pinned: the models check prompts, the tests', the demo's."""
    singles = [
        *CHECK_PROMPTS,
        *(capital_question(c) for c in CAPITALS),
        JSON_PROMPT,
        REPEAT_PROMPT,
        COUNT_PROMPT,
        *WEAK_PROMPTS,
    ]
    return [[{"role": "user", "content": p}] for p in singles] + [FOLLOW_UP]


# -- the build --


def llama_cpp_flags() -> dict[str, bool]:
    """The CPU features llama.cpp was compiled with, from `llama_print_system_info()`."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    return {k: v == "1" for k, v in re.findall(r"([A-Z0-9_]+) = (\d)", info)}


def llama_cpp_build() -> str:
    """`x86-64-v3` for the portable build; else the CPU features this one was built with and a note that it
    is not the portable one (e.g. `AVX ... AVX512 AVX512_VNNI (not x86-64-v3)` after `make install
    LLAMA_CPU=native` on an AVX-512 machine), so a tokens/s figure or a changed answer can be put down to the
    build. These are the features ggml selects its kernels by: a native build on a CPU that has exactly the
    x86-64-v3 set runs the same kernels, and is reported as x86-64-v3."""
    isa = [k for k, on in llama_cpp_flags().items() if on and _is_isa(k)]
    return PORTABLE if set(isa) == PORTABLE_FLAGS else f"{' '.join(isa)} (not {PORTABLE})"


def _is_isa(flag: str) -> bool:
    return flag not in {"LLAMAFILE", "OPENMP", "REPACK", "ACCELERATE", "KLEIDIAI"} and not flag.endswith(
        "_LIB"
    )


def build_info() -> dict[str, Any]:
    from importlib.metadata import version

    return {"build": llama_cpp_build(), "llama_cpp_python": version("llama_cpp_python"), "threads": THREADS}


# -- the answers --


@dataclass
class Answer:
    messages: list[dict[str, str]]
    text: str
    finish: str
    min_gap: float
    """The smallest top-1/top-2 log-probability gap along the answer (nats)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "answer": self.text,
            "finish": self.finish,
            "min_gap": round(self.min_gap, 3),
        }


def greedy_answers(conversations: list[list[dict[str, str]]] | None = None) -> list[Answer]:
    """The embedded model's greedy answers on llama.cpp, `THREADS` threads, one sequence, no prefix cache
    (so an answer does not depend on the ones before it)."""
    from llmworks.engines import SamplingParams, load_engine

    params = SamplingParams(max_tokens=MAX_TOKENS, logprobs=2)
    out = []
    with load_engine(None, "llamacpp", n_threads=THREADS, parallel=1, prefix_cache=False) as engine:
        for messages in conversations or golden_conversations():
            text, gaps, finish = [], [], "length"
            for d in engine.chat(messages, params):
                text.append(d.text)
                if d.logprob is not None and len(d.logprob.top) > 1:
                    gaps.append(d.logprob.top[0][1] - d.logprob.top[1][1])
                finish = d.finish_reason or finish
            out.append(Answer(messages, "".join(text), finish, min(gaps, default=0.0)))
    return out


def load_golden(path: Path = GOLDEN) -> dict[str, Any]:
    return json.loads(path.read_text())


def changed(answers: list[Answer], golden: dict[str, Any]) -> list[str]:
    """One line per conversation whose answer differs from the recorded one (or that was not recorded)."""
    recorded = {conversation_key(g["messages"]): g for g in golden["answers"]}
    lines = []
    for a in answers:
        g = recorded.get(conversation_key(a.messages))
        if g is None:
            lines.append(
                f"{conversation_key(a.messages)!r}: not recorded (re-record: python -m llmworks.testing.golden --record)"
            )
        elif (a.text, a.finish) != (g["answer"], g["finish"]):
            lines.append(
                f"{conversation_key(a.messages)!r}: recorded {g['answer']!r} ({g['finish']}, min gap {g['min_gap']}), "
                f"now {a.text!r} ({a.finish})"
            )
    stale = set(recorded) - {conversation_key(a.messages) for a in answers}
    lines += [f"{k!r}: recorded but no longer asked (re-record)" for k in sorted(stale)]
    return lines


def _dump(doc: dict[str, Any]) -> str:
    """JSON with one answer per line, so a re-recording's diff shows which answers changed."""
    head = {k: v for k, v in doc.items() if k != "answers"}
    lines = [json.dumps(a, ensure_ascii=False) for a in doc["answers"]]
    body = json.dumps(head, indent=1, ensure_ascii=False)[:-2]
    return body + ',\n "answers": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n"


def conversation_key(messages: list[dict[str, str]]) -> str:
    return " / ".join(m["content"] for m in messages)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--record", action="store_true", help=f"write {GOLDEN.name} (portable build only)")
    ap.add_argument("--json", type=Path, help="write this build's answers here")
    ap.add_argument(
        "--golden", type=Path, default=GOLDEN, help="compare with this file (default: %(default)s)"
    )
    args = ap.parse_args(argv)
    info = build_info()
    if args.record and info["build"] != PORTABLE:
        print(f"refusing to record: this llama-cpp-python is built for {info['build']}, not {PORTABLE}.")
        return 2
    answers = greedy_answers()
    print(json.dumps(info))
    doc = {
        "_comment": f"Greedy answers of the embedded model, recorded from the {info['build']} build with "
        f"{THREADS} threads. Re-record: .venv/bin/python -m llmworks.testing.golden --record",
        **info,
        "max_tokens": MAX_TOKENS,
        "answers": [a.to_json() for a in answers],
    }
    if args.json:
        args.json.write_text(_dump(doc))
    if args.record:
        GOLDEN.write_text(_dump(doc))
        print(f"recorded {len(answers)} answers in {GOLDEN}")
        return 0
    if not args.golden.exists():
        print(f"{args.golden} is missing: record it with --record")
        return 1
    diff = changed(answers, load_golden(args.golden))
    for line in diff:
        print(line)
    print(f"{len(answers) - len(diff)} of {len(answers)} answers as recorded")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
