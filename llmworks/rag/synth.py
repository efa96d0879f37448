"""`llmworks rag synth`: questions generated from a knowledge base's chunks, by any model (through the
client), kept only when retrieval finds their own chunk again (top k): an eval set for `rag eval`, and
messages-format SFT data whose answers cite their source, in the very prompt `rag ask` builds. The chain
closes: a knowledge base's questions tune the model that answers them.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmworks.atomic import atomic_write
from llmworks.errors import UserError
from llmworks.rag.answer import CitationFilter, Source, grounded_messages
from llmworks.rag.config import SynthConfig
from llmworks.rag.retrieve import Hit

if TYPE_CHECKING:
    from llmworks.client import Client
    from llmworks.rag.kb import KnowledgeBase

__all__ = ["SynthReport", "synthesize"]

MIN_WORDS = 12
"""Chunks shorter than this (headings, stubs) make poor questions."""


@dataclass
class SynthReport:
    asked: int = 0
    kept: int = 0
    not_a_question: int = 0
    not_retrieved: int = 0
    """Questions whose own chunk was not among the top k."""
    eval_path: Path | None = None
    sft_path: Path | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"kept {self.kept} of {self.asked} generated questions ({self.not_retrieved} whose chunk was not "
            f"retrieved, {self.not_a_question} not questions) -> {self.eval_path}"
            + (f", SFT data {self.sft_path}" if self.sft_path else "")
        )


QUESTION_PROMPT = (
    "Here is a passage from a document.\n\n{text}\n\nWrite one question that this passage answers. The "
    "question must make sense without the passage. Reply with the question only."
)
ANSWER_PROMPT = (
    "Answer the question in one or two sentences, using only this passage:\n\n{text}\n\nQuestion: {question}"
)


def synthesize(
    kb: KnowledgeBase,
    cfg: SynthConfig,
    client: Callable[[], Client],
    progress: Callable[[str], None] | None = None,
) -> SynthReport:
    from llmworks.rag.ingest import ChunkArchive
    from llmworks.rag.retrieve import retrieve

    kb.refresh()
    if not kb.current:
        raise UserError(f"knowledge base {kb.name!r} has no version yet.", "Ingest documents first.")
    ids = kb.paths.read_manifest(kb.current).ids
    records = ChunkArchive(kb.paths.chunks).load()
    pool = [records[i] for i in ids if len(records[i]["text"].split()) >= MIN_WORDS]
    if not pool:
        raise UserError(f"knowledge base {kb.name!r} has no chunk long enough to ask about.", "")
    random.Random(cfg.seed).shuffle(pool)
    report = SynthReport()
    evals: list[dict[str, Any]] = []
    sft: list[dict[str, Any]] = []
    from llmworks.rag.config import SearchOptions

    opts = SearchOptions(k=cfg.k)
    for rec in pool:
        if report.kept >= cfg.n or report.asked >= 4 * cfg.n:
            break
        report.asked += 1
        raw = (
            client()
            .chat(
                [{"role": "user", "content": QUESTION_PROMPT.format(text=rec["text"][:1200])}],
                max_tokens=cfg.max_tokens,
                temperature=0.0,
            )
            .content
        )
        question = _question(raw or "")
        if question is None:
            report.not_a_question += 1
            continue
        hits = retrieve([kb], question, opts).hits
        rank = next((n for n, h in enumerate(hits, 1) if h.id == rec["id"]), None)
        if rank is None:
            report.not_retrieved += 1
            continue
        report.kept += 1
        evals.append(
            {
                "question": question,
                "sources": [rec["source"]],
                **({"pages": [rec["page"]]} if rec.get("page") is not None else {}),
                "chunk": rec["id"],
                "heading": rec.get("heading") or "",
                "rank": rank,
            }
        )
        if cfg.answers:
            sft.append(_sft_example(client(), question, hits, rank, cfg))
        if progress is not None:
            progress(f"[{report.kept}/{cfg.n}] {question}")
    out = Path(cfg.output)
    atomic_write(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in evals))
    report.eval_path = out
    if cfg.answers:
        report.sft_path = out.with_name(out.stem + ".sft.jsonl")
        atomic_write(report.sft_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in sft))
    report.examples = evals[:3]
    return report


def _question(reply: str) -> str | None:
    """The first line that reads as a question (without list markers or a "Question:" label)."""
    for line in reply.strip().splitlines():
        line = re.sub(r"^\s*(?:\d+[.)]|[-*]|question\s*:|q\s*:)\s*", "", line, flags=re.I).strip().strip('"')
        english = line.endswith("?") and 4 <= len(line.split()) <= 40
        chinese = line.endswith("？") and len(line) >= 6
        if english or chinese:
            return line
    return None


def _sft_example(
    client: Client, question: str, hits: list[Hit], rank: int, cfg: SynthConfig
) -> dict[str, Any]:
    """The `rag ask` prompt with these sources, and an answer from the question's own chunk that cites it."""
    own = hits[rank - 1]
    reply = (
        client.chat(
            [{"role": "user", "content": ANSWER_PROMPT.format(text=own.text[:1200], question=question)}],
            max_tokens=cfg.max_tokens,
            temperature=0.0,
        ).content
        or ""
    )
    sources = [Source(n, h) for n, h in enumerate(hits, 1)]
    cite = CitationFilter([sources[rank - 1]], attribute=False)  # only its own chunk may be cited
    text = (cite.feed(reply) + cite.finish()).strip()
    text = re.sub(r"\s*\[\d+\]", "", text)
    end = re.search(r"[.!?。！？]+$", text)
    cut = end.start() if end else len(text)
    answer = f"{text[:cut]} [{rank}]{text[cut:]}" if text else f"See [{rank}]."
    messages = grounded_messages(question, hits)
    return {"messages": [*messages, {"role": "assistant", "content": answer}], "source": own.where}
