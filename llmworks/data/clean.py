"""`llmworks data clean`: mask PII, filter by length, language and repetition, drop exact and near duplicates.

Rules run in that order on a stream of records; each reports how many records it checked, removed or
changed. Dropped records can be kept for audit (`removed`), each tagged with the rule that dropped it.
Memory grows only with what dedupe must remember: ~0.1 KB per kept record for exact dedupe and
~1 KB per record for near dedupe (about 1 GB for a million records); everything else streams.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xxhash

from llmworks.data import formats, io
from llmworks.data.config import CleanConfig
from llmworks.data.near_dedupe import LSHIndex, SignaturePool, tokens
from llmworks.data.progress import advance, progress

# -- PII ------------------------------------------------------------------------------------------
# Order matters: e-mails and ID numbers first, so their digits are not taken for phone numbers.
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
PII_PATTERNS: dict[str, re.Pattern[str]] = {
    "email": re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
    # China resident ID (18 digits, last may be X), US SSN
    "id_number": re.compile(r"(?<!\d)(?:\d{17}[\dXx]|\d{3}-\d{2}-\d{4})(?![\dXx])"),
    "ip": re.compile(
        rf"(?<![\d.])(?:{_OCTET}\.){{3}}{_OCTET}(?![\d.])|\b(?:[0-9A-Fa-f]{{1,4}}:){{7}}[0-9A-Fa-f]{{1,4}}\b"
    ),
    # international (+44 20 7946 0958), North American ((555) 123-4567), Chinese mobile (13812345678)
    "phone": re.compile(
        r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])?\d{3,4}[ .-]\d{4}(?!\d)|(?<!\d)1[3-9]\d{9}(?!\d)"
    ),
}
PII_MASKS = {"email": "<EMAIL>", "id_number": "<ID_NUMBER>", "ip": "<IP_ADDRESS>", "phone": "<PHONE>"}


# Digit-based PII sits in runs of digits and separators; scanning for those first is several times
# faster than running every pattern over the whole text, and most text has few such runs.
_DIGIT_RUN = re.compile(r"[+(\d][\d ().+-]{5,}[\dXx]")
_DIGIT_KINDS = ("id_number", "ip", "phone")


def mask_pii(text: str) -> tuple[str, set[str]]:
    found: set[str] = set()

    def sub(kind: str, s: str) -> str:
        s, n = PII_PATTERNS[kind].subn(PII_MASKS[kind], s)
        if n:
            found.add(kind)
        return s

    if "@" in text:
        text = sub("email", text)
    if text.count(":") >= 7:  # IPv6
        text = sub("ip", text)

    def in_run(m: re.Match[str]) -> str:
        s = m.group()
        for kind in _DIGIT_KINDS:
            s = sub(kind, s)
        return s

    return _DIGIT_RUN.sub(in_run, text), found


def _mask_record(value: Any, found: set[str]) -> Any:
    if isinstance(value, str):
        text, kinds = mask_pii(value)
        found |= kinds
        return text
    if isinstance(value, list):
        return [_mask_record(v, found) for v in value]
    if isinstance(value, dict):
        return {k: v if k in ("source", "role", "from") else _mask_record(v, found) for k, v in value.items()}
    return value


# -- filters --------------------------------------------------------------------------------------


def repetition(text: str, n: int = 3) -> float:
    """Share of repeated token n-grams (0 = none repeated); high for spam and degenerate generations."""
    toks = tokens(text)
    grams = list(zip(*(toks[i:] for i in range(n)), strict=False))
    if len(grams) < 4:
        return 0.0
    return 1 - len(set(grams)) / len(grams)


def language(text: str) -> str:
    from langdetect import DetectorFactory, LangDetectException, detect

    DetectorFactory.seed = 0  # langdetect is random unless seeded
    try:
        lang = detect(text[:2000])
    except LangDetectException:
        return "unknown"
    return lang.split("-")[0]  # zh-cn, zh-tw -> zh


_NON_WORD = re.compile(r"[\W_]+")


def normalized(text: str) -> str:
    """Case, width, punctuation and whitespace folded: what exact dedupe compares."""
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def exact_key(text: str) -> int:
    """The key exact dedupe compares: a hash of the folded text."""
    return xxhash.xxh3_64_intdigest(normalized(text).encode())


RULES = ("pii", "length", "language", "repetition", "exact-dup", "near-dup")


@dataclass
class RuleCount:
    checked: int = 0
    removed: int = 0
    changed: int = 0


@dataclass
class CleanReport:
    records_in: int = 0
    records_out: int = 0
    malformed: int = 0
    rules: dict[str, RuleCount] = field(default_factory=lambda: {r: RuleCount() for r in RULES})


@dataclass
class _Item:
    where: str
    record: dict[str, Any]
    text: str


def clean(
    src: Path | str, out: Path | str, cfg: CleanConfig | None = None, removed: Path | str | None = None
) -> CleanReport:
    """Stream `src` through the rules into `out`; `removed` gets each dropped record and its rule."""
    cfg = cfg or CleanConfig()
    src = io.check_exists([src])[0]
    report = CleanReport()
    seen: set[int] = set()
    index = LSHIndex(cfg.near_threshold) if cfg.near_dedupe else None
    audit = io.JsonlWriter(removed, "removed records", allow_empty=True) if removed else None
    with (
        io.JsonlWriter(out, "records") as w,
        audit if audit else nullcontext() as dropped,
        SignaturePool(cfg.workers if cfg.near_dedupe else 0) as pool,
        progress(f"clean {src.name}", io.input_size(src)) as bar,
    ):

        def drop(item: _Item, rule: str, detail: Any = None) -> None:
            report.rules[rule].removed += 1
            if dropped is not None:
                dropped.write(
                    {"removed_by": rule, "detail": detail, "where": item.where, "record": item.record}
                )

        def finish(survivors: list[_Item], sigs: Callable[[], Any] | None) -> None:
            if index is not None and sigs is not None:
                kept = []
                for item, sig in zip(survivors, sigs(), strict=True):
                    report.rules["near-dup"].checked += 1
                    if index.check_add(sig) is None:
                        kept.append(item)
                    else:
                        drop(item, "near-dup")
                survivors = kept
            for item in survivors:
                w.write(item.record)

        # While the workers hash one batch, this process filters the next.
        pending: tuple[list[_Item], Callable[[], Any] | None] | None = None
        for batch in _batches(io.read_records(src), 1024):
            survivors = []
            for row in batch:
                advance(bar, row.nbytes)
                if row.record is None:
                    report.malformed += 1
                    continue
                report.records_in += 1
                item = _Item(row.where, row.record, formats.text_of(row.record))
                if _keep(item, cfg, report, seen, drop):
                    survivors.append(item)
            sigs = pool.submit([it.text for it in survivors]) if index is not None and survivors else None
            if pending is not None:
                finish(*pending)
            pending = (survivors, sigs)
        if pending is not None:
            finish(*pending)
        report.records_out = w.count
        w.empty_reason = f"all {report.records_in} records were removed"
    return report


def _keep(item: _Item, cfg: CleanConfig, report: CleanReport, seen: set[int], drop: Any) -> bool:
    rules = report.rules
    if cfg.mask_pii:
        rules["pii"].checked += 1
        found: set[str] = set()
        masked = _mask_record(item.record, found)
        if found:
            rules["pii"].changed += 1
            item.record, item.text = masked, formats.text_of(masked)
    n = len(item.text)
    if cfg.min_chars or cfg.max_chars:
        rules["length"].checked += 1
        if n < cfg.min_chars or (cfg.max_chars and n > cfg.max_chars):
            drop(item, "length", n)
            return False
    if cfg.languages:
        rules["language"].checked += 1
        lang = language(item.text)
        if lang not in cfg.languages:
            drop(item, "language", lang)
            return False
    if cfg.max_repetition < 1:
        rules["repetition"].checked += 1
        rep = repetition(item.text)
        if rep > cfg.max_repetition:
            drop(item, "repetition", round(rep, 3))
            return False
    if cfg.exact_dedupe:
        rules["exact-dup"].checked += 1
        h = exact_key(item.text)
        if h in seen:
            drop(item, "exact-dup")
            return False
        seen.add(h)
    return True


def _batches(rows: Iterator[io.Row], size: int) -> Iterator[list[io.Row]]:
    batch: list[io.Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
