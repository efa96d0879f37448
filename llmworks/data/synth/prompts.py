"""Reading seed tasks and prompts: JSONL/JSON/CSV/Parquet records of any known format, or text lines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from llmworks.data import formats, io
from llmworks.errors import UserError


def read_prompts(path: Path | str) -> Iterator[list[dict[str, str]]]:
    """Prompt turns (ending with the user's turn) from each record or non-empty text line."""
    path = io.check_exists([path])[0]
    if path.suffix.lower() in (".txt", ".md"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                yield [{"role": "user", "content": line.strip()}]
        return
    for row in io.read_records(path):
        rec = row.record
        if rec is None:
            raise UserError(f"{row.where}: {row.error}.", "Fix the line.")
        if isinstance(rec.get("prompt"), str) and "chosen" not in rec:
            yield [{"role": "user", "content": rec["prompt"]}]
            continue
        if (
            isinstance(rec.get("messages"), list)
            and rec["messages"]
            and rec["messages"][-1].get("role") == "user"
        ):
            yield [{"role": m["role"], "content": m["content"]} for m in rec["messages"]]
            continue
        try:
            msgs = formats.parse(rec).messages
        except formats.BadRecord as e:
            raise UserError(
                f"{row.where}: {e}.", "Give prompts as text lines or records with a prompt."
            ) from e
        yield msgs[:-1]


def read_tasks(path: Path | str) -> list[dict[str, str]]:
    """Seed tasks as {"instruction", "input", "output"}; alpaca records keep their input separate."""
    path = io.check_exists([path])[0]
    tasks: list[dict[str, str]] = []
    if path.suffix.lower() in (".txt", ".md"):
        return [{"instruction": p[-1]["content"], "input": "", "output": ""} for p in read_prompts(path)]
    for row in io.read_records(path):
        rec = row.record
        if rec is None:
            raise UserError(f"{row.where}: {row.error}.", "Fix the line.")
        if isinstance(rec.get("instruction"), str):
            tasks.append(
                {
                    "instruction": rec["instruction"],
                    "input": str(rec.get("input") or ""),
                    "output": str(rec.get("output") or ""),
                }
            )
            continue
        try:
            msgs = formats.parse(rec).messages
        except formats.BadRecord as e:
            raise UserError(f"{row.where}: {e}.", "Give seed tasks as alpaca or chat records.") from e
        tasks.append({"instruction": msgs[-2]["content"], "input": "", "output": msgs[-1]["content"]})
    if not tasks:
        raise UserError(f"{path} has no seed tasks.", "Give at least one seed task.")
    return tasks
