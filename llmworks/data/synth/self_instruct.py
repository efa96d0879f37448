"""Self-Instruct (Wang et al., 2023): grow a task set from seeds with the model itself.

Each round shows the model a few seed tasks and a few it has made, and asks for a new one. A candidate
is dropped when it fails the paper's format checks or its ROUGE-L against any instruction already in
the pool exceeds 0.7, so the set grows in variety rather than in near-copies.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from rouge_score import rouge_scorer

from llmworks.client import Client
from llmworks.data.near_dedupe import tokens

# From the paper: tasks a text-only model cannot do.
BLOCKLIST = (
    "image",
    "images",
    "graph",
    "graphs",
    "picture",
    "pictures",
    "file",
    "files",
    "map",
    "maps",
    "draw",
    "plot",
    "go to",
    "video",
    "audio",
    "music",
    "flowchart",
    "diagram",
)
_BLOCK = re.compile(r"\b(?:" + "|".join(BLOCKLIST) + r")\b", re.I)
_FIELDS = re.compile(
    r"Instruction:\s*(?P<instruction>.+?)\s*(?:Input:\s*(?P<input>.*?)\s*)?Output:\s*(?P<output>.+)",
    re.S | re.I,
)


@dataclass
class SelfInstructReport:
    accepted: int = 0
    attempts: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


class _Tokenizer:
    """rouge-score's default tokenizer drops non-ASCII text; this one keeps CJK characters."""

    def tokenize(self, text: str) -> list[str]:
        return tokens(text)


def build_prompt(examples: list[dict[str, str]]) -> str:
    parts = ["Come up with a new task for an AI assistant. Here are some example tasks:\n"]
    for i, t in enumerate(examples, 1):
        parts.append(f"Task {i}\nInstruction: {t['instruction']}")
        if t.get("input"):
            parts.append(f"Input: {t['input']}")
        parts.append(f"Output: {t.get('output') or '...'}\n")
    parts.append(
        "Write one new task that is different from all of these, with its correct output, in the same format: "
        'a line starting with "Instruction:", an optional line starting with "Input:", then "Output:".'
    )
    return "\n".join(parts)


def parse_candidate(text: str) -> dict[str, str] | None:
    m = _FIELDS.search(text)
    if not m:
        return None
    out = m["output"].strip()
    out = re.split(r"\n\s*Task \d+|\n\s*Instruction:", out)[0].strip()  # the model went on to another task
    return {"instruction": m["instruction"].strip(), "input": (m["input"] or "").strip(), "output": out}


def format_problem(task: dict[str, str]) -> str | None:
    """The reason a candidate fails the paper's checks, or None."""
    inst = task["instruction"]
    n = len(tokens(inst))
    if n <= 3 or n > 150:
        return "instruction length"
    if _BLOCK.search(inst):
        return "needs non-text input or output"
    if not inst[0].isalnum():
        return "starts with punctuation"
    if not task["output"].strip():
        return "empty output"
    return None


def self_instruct(
    client: Client,
    seeds: list[dict[str, str]],
    n: int,
    report: SelfInstructReport,
    max_rouge: float = 0.7,
    max_attempts: int | None = None,
    seed: int = 0,
    n_seed_examples: int = 3,
    n_machine_examples: int = 2,
) -> Iterator[dict[str, str]]:
    """Yield up to `n` new tasks ({"instruction", "input", "output"}) as they are accepted."""
    rng = random.Random(seed)
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Tokenizer())
    pool = [t["instruction"] for t in seeds]
    made: list[dict[str, str]] = []
    max_attempts = max_attempts if max_attempts is not None else 10 * n
    while report.accepted < n and report.attempts < max_attempts:
        report.attempts += 1
        examples = rng.sample(seeds, min(n_seed_examples, len(seeds)))
        examples += rng.sample(made, min(n_machine_examples, len(made)))
        rng.shuffle(examples)
        reply = (
            client.chat(
                [{"role": "user", "content": build_prompt(examples)}],
                max_tokens=384,
                temperature=0.7,
                top_p=0.95,
                seed=seed + report.attempts,
            ).content
            or ""
        )
        task = parse_candidate(reply)
        problem = "unparseable reply" if task is None else format_problem(task)
        if problem is None and task is not None:
            best = max((scorer.score(p, task["instruction"])["rougeL"].fmeasure for p in pool), default=0.0)
            if best > max_rouge:
                problem = f"too similar (ROUGE-L > {max_rouge:.2f})"
        if problem is not None or task is None:
            report.rejected[problem or "unparseable reply"] += 1
            continue
        pool.append(task["instruction"])
        made.append(task)
        report.accepted += 1
        yield task
