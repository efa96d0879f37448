"""Structure-aware chunking of parsed records (`llmworks.data.parse` with `markdown=True`).

Headings (Markdown `#` lines) and pages (one record per PDF page) are boundaries: a chunk never spans two
sections or two pages, and carries its heading path ("Setup > Disks"). Inside a section, paragraphs are cut
into sentences and packed up to `size` embedder tokens, with `overlap` tokens of the previous chunk's last
sentences repeated. A table stays whole with its header row when it fits; a larger table is split by rows,
and every part repeats the header. Each chunk keeps its source, page, heading path, character offsets into
its record's text and a content hash (of the text as indexed: heading path + text).
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from llmworks.rag.tokens import TokenCounter

__all__ = ["Chunk", "chunk_record", "content_hash"]

STRUCTURED = {"markdown", "html", "docx"}
"""Formats whose text has Markdown headings and tables (the parser's `markdown=True` output)."""
MIN_BODY = 32
"""Tokens a chunk's body keeps at least, however long its heading path."""

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.M)
_FENCE = re.compile(r"^```.*?^```[ \t]*$", re.M | re.S)
_SENTENCE_END = re.compile(r"[.!?;:]+[\"')\]”’]*(?=\s)|[。！？；]+[”’」』）]*|\n")


@dataclass(frozen=True)
class Chunk:
    text: str
    """The chunk as shown and cited (a split table's part starts with the table's header)."""
    source: str
    page: int | None
    heading: str
    """The heading path, outermost first: "Setup > Disks" ("" before the first heading)."""
    start: int
    end: int
    """Character offsets of the span it covers in its record's text (the page's, for a PDF)."""
    row: int | None = None
    """The row of a record file (JSONL/CSV, Q&A pairs)."""
    kind: str = "text"
    """text, table or qa."""

    @property
    def index_text(self) -> str:
        """What is embedded and BM25-indexed: the heading path gives a chunk its context."""
        return f"{self.heading}\n{self.text}" if self.heading else self.text

    @property
    def hash(self) -> str:
        return content_hash(self.index_text)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass
class _Unit:
    start: int
    end: int
    text: str
    tokens: int = 0
    table: bool = False
    """A whole table or a part of one: never cut, never repeated as overlap."""


def chunk_record(
    record: Mapping[str, Any], counter: TokenCounter, size: int = 200, overlap: int = 32
) -> list[Chunk]:
    """The chunks of one parsed record, in reading order."""
    text: str = record.get("text") or ""
    fmt = record.get("format", "")
    base = record.get("heading") or ""
    kind = "qa" if fmt == "qa" else "text"
    out: list[Chunk] = []
    for heading, start, end in _sections(text, base, fmt in STRUCTURED):
        body_budget = max(MIN_BODY, size - counter.count(heading) - 1) if heading else size
        units = _units(text, start, end, counter, body_budget, fmt in STRUCTURED)
        for group in _pack(units, body_budget, overlap):
            out.append(
                Chunk(
                    text=_join(text, group),
                    source=str(record.get("source", "")),
                    page=record.get("page"),
                    heading=heading,
                    start=group[0].start,
                    end=group[-1].end,
                    row=record.get("row"),
                    kind="table" if all(u.table for u in group) else kind,
                )
            )
    return out


def _sections(text: str, base: str, structured: bool) -> Iterator[tuple[str, int, int]]:
    """(heading path, start, end) of each section's body; code blocks are not searched for headings."""
    if not structured:
        yield base, 0, len(text)
        return
    fences = [(m.start(), m.end()) for m in _FENCE.finditer(text)]
    heads = [m for m in _HEADING.finditer(text) if not any(a <= m.start() < b for a, b in fences)]
    stack: list[tuple[int, str]] = []
    path = base
    pos = 0
    for m in heads:
        yield path, pos, m.start()
        level = len(m.group(1))
        stack = [(lv, t) for lv, t in stack if lv < level] + [(level, m.group(2).strip())]
        path = " > ".join([*([base] if base else []), *(t for _, t in stack)])
        pos = m.end()
    yield path, pos, len(text)


def _units(
    text: str, start: int, end: int, counter: TokenCounter, budget: int, structured: bool
) -> list[_Unit]:
    """Sentences, code blocks and tables of a section body, each within `budget` tokens."""
    units: list[_Unit] = []
    for kind, a, b in _blocks(text, start, end, structured):
        if kind == "table":
            units += _table_units(text, a, b, counter, budget)
        elif kind == "code":
            units.append(_Unit(a, b, text[a:b]))
        else:
            units += _sentences(text, a, b)
    counts = counter.counts([u.text for u in units if not u.tokens])
    for u, n in zip((u for u in units if not u.tokens), counts, strict=True):
        u.tokens = n
    out: list[_Unit] = []
    for u in units:  # a sentence or code block longer than a chunk: cut at token boundaries
        if u.tokens <= budget or u.table:
            out.append(u)
            continue
        for a, b in counter.cut(u.text, budget):
            piece = u.text[a:b]
            lead = len(piece) - len(piece.lstrip())
            piece = piece.strip()
            if piece:
                out.append(_Unit(u.start + a + lead, u.start + a + lead + len(piece), piece))
    uncounted = [u for u in out if not u.tokens]
    for u, n in zip(uncounted, counter.counts([u.text for u in uncounted]), strict=True):
        u.tokens = n
    return out


def _blocks(text: str, start: int, end: int, structured: bool) -> Iterator[tuple[str, int, int]]:
    """("para" | "table" | "code", start, end) blocks: runs of table lines, fenced code, the rest."""
    pos = start
    para_start: int | None = None
    while pos < end:
        nl = text.find("\n", pos, end)
        line_end = end if nl < 0 else nl
        line = text[pos:line_end]
        fence = structured and line.startswith("```")
        is_table = _is_table_line(line, structured)
        if fence or is_table:
            if para_start is not None:
                yield "para", para_start, pos
                para_start = None
            if fence:
                close = text.find("\n```", line_end, end)
                nxt = text.find("\n", close + 4, end) if close >= 0 else -1
                block_end = end if nxt < 0 else nxt
                yield "code", pos, block_end
                pos = block_end + 1
                continue
            table_end = line_end
            p = line_end + 1
            while p < end:
                nl2 = text.find("\n", p, end)
                e2 = end if nl2 < 0 else nl2
                if not _is_table_line(text[p:e2], structured):
                    break
                table_end, p = e2, e2 + 1
            yield "table", pos, table_end
            pos = table_end + 1
            continue
        if para_start is None and line.strip():
            para_start = pos
        pos = line_end + 1
    if para_start is not None and para_start < end:
        yield "para", para_start, end


def _is_table_line(line: str, structured: bool) -> bool:
    s = line.strip()
    if structured:
        return len(s) > 1 and s.startswith("|") and s.endswith("|")
    return line.count("\t") >= 1 and bool(s)  # DOCX tables as tab-separated rows (plain parsing)


def _sentences(text: str, start: int, end: int) -> list[_Unit]:
    out, pos = [], start
    for m in _SENTENCE_END.finditer(text, start, end):
        _add_span(out, text, pos, m.end())
        pos = m.end()
    _add_span(out, text, pos, end)
    return out


def _add_span(out: list[_Unit], text: str, a: int, b: int) -> None:
    piece = text[a:b]
    stripped = piece.strip()
    if stripped:
        s = a + len(piece) - len(piece.lstrip())
        out.append(_Unit(s, s + len(stripped), stripped))


def _table_units(text: str, start: int, end: int, counter: TokenCounter, budget: int) -> list[_Unit]:
    """A table as one unit when it fits, else parts of whole rows that each begin with the header."""
    lines, pos = [], start
    for line in text[start:end].split("\n"):
        lines.append((pos, pos + len(line)))
        pos += len(line) + 1
    n_head = 2 if len(lines) > 1 and set(text[lines[1][0] : lines[1][1]].strip()) <= set("|-: ") else 1
    header = "\n".join(text[a:b] for a, b in lines[:n_head])
    whole = text[start:end]
    total = counter.count(whole)
    if total <= budget or len(lines) <= n_head + 1:
        return [_Unit(start, end, whole, total, table=True)]
    head_tokens = counter.count(header)
    rows = lines[n_head:]
    row_tokens = counter.counts([text[a:b] for a, b in rows])
    units: list[_Unit] = []
    part: list[tuple[int, int]] = []
    used = head_tokens
    for (a, b), n in zip(rows, row_tokens, strict=True):
        if part and used + n > budget:
            units.append(_table_part(text, header, part, used))
            part, used = [], head_tokens
        part.append((a, b))
        used += n
    if part:
        units.append(_table_part(text, header, part, used))
    units[0].start = start  # the first part covers the header too
    return units


def _table_part(text: str, header: str, rows: list[tuple[int, int]], tokens: int) -> _Unit:
    body = text[rows[0][0] : rows[-1][1]]
    return _Unit(rows[0][0], rows[-1][1], f"{header}\n{body}", tokens, table=True)


def _pack(units: list[_Unit], budget: int, overlap: int) -> list[list[_Unit]]:
    """Units packed greedily up to `budget` tokens; a new chunk starts with the previous one's last
    sentences (up to `overlap` tokens), never with table parts."""
    groups: list[list[_Unit]] = []
    cur: list[_Unit] = []
    used = 0
    for u in units:
        if cur and used + u.tokens > budget:
            groups.append(cur)
            tail: list[_Unit] = []
            kept = 0
            for v in reversed(cur):
                if v.table or kept + v.tokens > overlap or kept + v.tokens + u.tokens > budget:
                    break
                tail.insert(0, v)
                kept += v.tokens
            cur, used = tail, kept
        cur.append(u)
        used += u.tokens
    if cur:
        groups.append(cur)
    return groups


def _join(text: str, group: list[_Unit]) -> str:
    """The units' texts with the source's own whitespace between neighbours (a newline otherwise)."""
    parts = [group[0].text]
    for prev, u in itertools.pairwise(group):
        gap = text[prev.end : u.start] if u.start >= prev.end else ""
        parts.append(gap if gap and not gap.strip() else "\n")
        parts.append(u.text)
    return "".join(parts)
