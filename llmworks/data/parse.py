"""`llmworks data parse`: documents (PDF, DOCX, HTML, Markdown, TXT, record files) to text records.

One record per PDF page, per document otherwise, per row for record files:
{"text", "source", "page", "title", "format"}. A broken or encrypted file is reported and skipped;
the run goes on. Layout-heavy PDFs (tables, scans needing OCR) go through docling or MinerU when
asked (`engine="docling" | "mineru"`), both optional extras imported only then.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from llmworks.data import io
from llmworks.data.progress import advance, progress
from llmworks.errors import MissingExtra, UserError

Engine = Literal["auto", "docling", "mineru"]
DOC_SUFFIXES = {".pdf", ".docx", ".html", ".htm", ".md", ".markdown", ".txt"}
SUFFIXES = DOC_SUFFIXES | set(io.RECORD_SUFFIXES)
TEXT_FIELDS = ("text", "content", "body", "document")


@dataclass
class ParseReport:
    files: int = 0
    records: int = 0
    empty_pages: int = 0
    """Pages without a text layer (scans): docling or MinerU can OCR them."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(file, reason) for each broken, encrypted or unreadable file."""
    by_format: Counter[str] = field(default_factory=Counter)


def parse_to_jsonl(paths: Iterable[Path | str], out: Path | str, engine: Engine = "auto") -> ParseReport:
    files = list(find_files(io.check_exists(paths)))
    report = ParseReport(files=len(files))
    total = sum(f.stat().st_size for f in files)
    with io.JsonlWriter(out, "parsed records") as w, progress("parse", total) as bar:
        for f in files:
            try:
                for rec in parse_file(f, engine):
                    if rec["text"].strip():
                        w.write(rec)
                        report.by_format[rec["format"]] += 1
                    else:
                        report.empty_pages += 1
            except MissingExtra:
                raise
            except Exception as e:  # any broken file: report it, keep going
                report.skipped.append((str(f), _reason(e)))
            advance(bar, f.stat().st_size)
        report.records = w.count
        w.empty_reason = (
            f"{len(files)} files, {len(report.skipped)} skipped, {report.empty_pages} empty pages"
        )
    return report


def find_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Files to parse; directories recursively, in a stable order, hidden files left out."""
    for p in paths:
        if p.is_dir() and not io.is_saved_dataset(p):
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p).parts
                if f.is_file() and f.suffix.lower() in SUFFIXES and not any(s.startswith(".") for s in rel):
                    yield f
        else:
            yield p


def parse_file(path: Path, engine: Engine = "auto") -> Iterator[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".pdf" and engine == "docling":
        yield _record(path, _docling(path), None, path.stem, "pdf")
    elif suffix == ".pdf" and engine == "mineru":
        yield _record(path, _mineru(path), None, path.stem, "pdf")
    elif suffix == ".pdf":
        yield from _pdf(path)
    elif suffix == ".docx":
        yield _docx(path)
    elif suffix in (".html", ".htm"):
        yield _html(path)
    elif suffix in (".md", ".markdown"):
        text = _read_text(path)
        heading = re.search(r"^#\s+(.+)$", text, re.M)
        yield _record(path, text, None, heading.group(1).strip() if heading else path.stem, "markdown")
    elif suffix == ".txt":
        yield _record(path, _read_text(path), None, path.stem, "text")
    elif suffix in io.RECORD_SUFFIXES or io.is_saved_dataset(path):
        yield from _rows(path)
    else:
        raise UserError(
            f"{path}: unsupported file type '{suffix}'.", f"Supported: {', '.join(sorted(SUFFIXES))}."
        )


def _record(path: Path, text: str, page: int | None, title: str, fmt: str) -> dict[str, Any]:
    return {"text": text, "source": str(path), "page": page, "title": title, "format": fmt}


def _pdf(path: Path) -> Iterator[dict[str, Any]]:
    from pypdf import PdfReader

    reader = PdfReader(path)
    # An owner-password-only PDF opens with the empty user password; a real password cannot be guessed.
    if reader.is_encrypted and not reader.decrypt(""):
        raise PermissionError("encrypted PDF (needs a password)")
    title = (reader.metadata.title if reader.metadata else None) or path.stem
    for n, page in enumerate(reader.pages, 1):
        yield _record(path, page.extract_text() or "", n, str(title), "pdf")


def _docx(path: Path) -> dict[str, Any]:
    import docx

    d = docx.Document(str(path))
    parts = [p.text for p in d.paragraphs]
    for table in d.tables:  # tables as tab-separated rows, after the body text
        parts += ["\t".join(c.text for c in row.cells) for row in table.rows]
    return _record(path, "\n".join(parts).strip(), None, d.core_properties.title or path.stem, "docx")


def _html(path: Path) -> dict[str, Any]:
    import trafilatura

    doc = trafilatura.bare_extraction(_read_text(path), with_metadata=True, include_tables=True)
    text = (doc.text if doc else "") or ""
    return _record(path, text, None, (doc.title if doc else None) or path.stem, "html")


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    for n, row in enumerate(io.read_records(path), 1):
        if row.record is None:
            continue  # a malformed line in a data file is not a document; `data convert` reports these
        text = next((row.record[k] for k in TEXT_FIELDS if isinstance(row.record.get(k), str)), None)
        if text is None:
            text = json.dumps(row.record, ensure_ascii=False, default=str)
        title = row.record.get("title") if isinstance(row.record.get("title"), str) else path.stem
        yield {**_record(path, text, None, title, "records"), "row": n}


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8 text ({e.reason} at byte {e.start}); re-encode it as UTF-8") from e


def _docling(path: Path) -> str:
    try:
        from docling.document_converter import DocumentConverter
    except ImportError as e:
        raise MissingExtra("docling (layout-aware PDF parsing with tables and OCR)", "docling") from e
    return DocumentConverter().convert(str(path)).document.export_to_markdown()


def _mineru(path: Path) -> str:
    exe = shutil.which("mineru")
    if exe is None:
        raise MissingExtra("MinerU (layout-aware PDF parsing with tables and OCR)", "mineru")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([exe, "-p", str(path), "-o", tmp], check=True, capture_output=True)
        md = sorted(Path(tmp).rglob("*.md"))
        if not md:
            raise RuntimeError("MinerU produced no Markdown")
        return md[0].read_text(encoding="utf-8")


def _reason(e: Exception) -> str:
    msg = str(e).strip() or type(e).__name__
    return msg.splitlines()[0][:200]
