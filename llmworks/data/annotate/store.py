"""Annotation state: the items to show, and the edits and rankings saved so far.

Every save rewrites its output file atomically, so what is on disk is always whole and current:
a crash or a page reload loses nothing. On start, earlier outputs in the same directory are read
back, so a session can be resumed.

Outputs (in `out_dir`):
- edited.jsonl       {"index", "messages"} for each edited SFT record
- rankings.jsonl     {"index", "ranking"} best-to-worst response indices, for resuming
- preferences.jsonl  {"index", "prompt", "chosen", "rejected"}: every (better, worse) pair of each ranking
"""

from __future__ import annotations

import json
import threading
from array import array
from itertools import combinations
from pathlib import Path
from typing import Any

from llmworks.atomic import atomic_open
from llmworks.data import formats, io


class Store:
    def __init__(self, src: Path, out_dir: Path) -> None:
        self.src, self.out_dir = src, out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self._spool = out_dir / ".source.jsonl"  # any input type, as JSONL lines we can seek to
        self._offsets = array("q")
        with atomic_open(self._spool, "wb") as f:
            pos = 0
            for row in io.read_records(src):
                line = (
                    json.dumps({"where": row.where, "record": row.record, "error": row.error}) + "\n"
                ).encode()
                f.write(line)
                self._offsets.append(pos)
                pos += len(line)
        self.edits: dict[int, list[dict[str, str]]] = {
            r["index"]: r["messages"] for r in _read(out_dir / "edited.jsonl")
        }
        self.rankings: dict[int, list[int]] = {
            r["index"]: r["ranking"] for r in _read(out_dir / "rankings.jsonl")
        }
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._offsets)

    def item(self, i: int) -> dict[str, Any]:
        with open(self._spool, "rb") as f:
            f.seek(self._offsets[i])
            row = json.loads(f.readline())
        out: dict[str, Any] = {"index": i, "count": len(self), "where": row["where"]}
        rec = row["record"]
        if rec is None:
            return out | {"kind": "invalid", "reason": row["error"]}
        ranked = _rank_item(rec)
        if ranked is not None:
            return out | {"kind": "rank", **ranked, "ranking": self.rankings.get(i)}
        try:
            ex = formats.parse(rec)
        except formats.BadRecord as e:
            return out | {"kind": "invalid", "reason": str(e)}
        return out | {"kind": "sft", "messages": self.edits.get(i, ex.messages), "edited": i in self.edits}

    def save_edit(self, i: int, messages: list[dict[str, str]]) -> None:
        ex = formats.parse({"messages": messages})  # raises BadRecord with the reason
        with self._lock:
            self.edits[i] = ex.messages
            _write(
                self.out_dir / "edited.jsonl",
                [{"index": k, "messages": v} for k, v in sorted(self.edits.items())],
            )

    def save_ranking(self, i: int, ranking: list[int]) -> int:
        item = self.item(i)
        if item["kind"] != "rank":
            raise formats.BadRecord("this record has no responses to rank")
        if sorted(ranking) != list(range(len(item["responses"]))):
            raise formats.BadRecord(f"ranking must order all {len(item['responses'])} responses, best first")
        with self._lock:
            self.rankings[i] = ranking
            _write(
                self.out_dir / "rankings.jsonl",
                [{"index": k, "ranking": v} for k, v in sorted(self.rankings.items())],
            )
            pairs = [p for k in sorted(self.rankings) for p in self._pairs(k)]
            _write(self.out_dir / "preferences.jsonl", pairs)
        return len(ranking) * (len(ranking) - 1) // 2

    def _pairs(self, i: int) -> list[dict[str, Any]]:
        item = self.item(i)
        resp = item["responses"]
        return [
            {"index": i, "prompt": item["prompt"], "chosen": [{"role": "assistant", "content": resp[a]}],
             "rejected": [{"role": "assistant", "content": resp[b]}]}
            for a, b in combinations(self.rankings[i], 2)  # ranking is best first, so a beats b
        ]  # fmt: skip


def _rank_item(rec: dict[str, Any]) -> dict[str, Any] | None:
    """{"prompt": messages, "responses": [...]} for `synth pairs` output or preference records."""
    if isinstance(rec.get("responses"), list) and len(rec["responses"]) >= 2:
        prompt = rec.get("prompt")
        msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        return {"prompt": msgs, "responses": [str(r) for r in rec["responses"]]}
    if "chosen" in rec and "rejected" in rec:
        try:
            ex = formats.parse(rec, "preference")
        except formats.BadRecord:
            return None
        return {"prompt": ex.messages[:-1], "responses": [ex.messages[-1]["content"], ex.rejected]}
    return None


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    with atomic_open(path) as f:
        for r in records:
            f.write(io.dumps(r) + "\n")
