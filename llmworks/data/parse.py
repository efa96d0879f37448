"""`llmworks data parse`: documents (PDF, DOCX, HTML, Markdown, TXT, record files) to text records.

One record per PDF page, per document otherwise, per row for record files:
{"text", "source", "page", "title", "format"} (PDF pages add "heading": the outline's section path at the
top of the page; Q&A rows with "question" and "answer" become "Q: ...\nA: ..." text, format "qa"). A broken or
encrypted file is reported and skipped; the run goes on. `markdown=True` keeps the structure of HTML and
DOCX as Markdown (headings as `#` lines, tables as pipe tables with their header row, code blocks), for
chunkers that split on headings (`llmworks rag ingest`). Layout-heavy PDFs (tables, scans needing OCR) go through docling or MinerU when
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


def parse_file(path: Path, engine: Engine = "auto", markdown: bool = False) -> Iterator[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".pdf" and engine == "docling":
        yield _record(path, _docling(path), None, path.stem, "pdf")
    elif suffix == ".pdf" and engine == "mineru":
        yield _record(path, _mineru(path), None, path.stem, "pdf")
    elif suffix == ".pdf":
        yield from _pdf(path)
    elif suffix == ".docx":
        yield _docx_markdown(path) if markdown else _docx(path)
    elif suffix in (".html", ".htm"):
        yield _html_markdown(path) if markdown else _html(path)
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
    import logging

    from pypdf import PdfReader

    # pypdf logs what it repairs ("EOF marker not found") on stderr; a file it cannot read is reported once,
    # as the skipped file's reason.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    reader = PdfReader(path)
    # An owner-password-only PDF opens with the empty user password; a real password cannot be guessed.
    if reader.is_encrypted and not reader.decrypt(""):
        raise PermissionError("encrypted PDF (needs a password)")
    title = (reader.metadata.title if reader.metadata else None) or path.stem
    headings = _pdf_headings(reader)
    for n, page in enumerate(reader.pages, 1):
        rec = _record(path, page.extract_text() or "", n, str(title), "pdf")
        if headings.get(n):
            rec["heading"] = headings[n]
        yield rec


def _pdf_headings(reader: Any) -> dict[int, str]:
    """Page number -> the outline's section path in force at the top of that page ("2 Setup > 2.1 Disks")."""
    entries: list[tuple[int, int, str]] = []  # (page, depth, title)

    def walk(items: list[Any], depth: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, depth + 1)
                continue
            try:
                entries.append((reader.get_destination_page_number(item) + 1, depth, str(item.title)))
            except Exception:  # a dangling outline entry: leave it out
                continue

    try:
        walk(reader.outline, 0)
    except Exception:  # a malformed outline: no headings, the text is still there
        return {}
    entries.sort(key=lambda e: e[0])  # stable: same-page entries keep outline order
    out: dict[int, str] = {}
    path: list[str] = []
    i = 0
    for page in range(1, len(reader.pages) + 1):
        if path:
            out[page] = " > ".join(path)
        while i < len(entries) and entries[i][0] <= page:
            _, depth, name = entries[i]
            path = [*path[:depth], name]
            i += 1
            if entries[i - 1][0] == page:
                out[page] = " > ".join(path)
    return out


def _docx(path: Path) -> dict[str, Any]:
    import docx

    d = docx.Document(str(path))
    parts = [p.text for p in d.paragraphs]
    for table in d.tables:  # tables as tab-separated rows, after the body text
        parts += ["\t".join(c.text for c in row.cells) for row in table.rows]
    return _record(path, "\n".join(parts).strip(), None, d.core_properties.title or path.stem, "docx")


def _docx_markdown(path: Path) -> dict[str, Any]:
    """Body paragraphs and tables in document order; "Heading N" styles as `#` lines, tables as pipe tables."""
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    d = docx.Document(str(path))
    parts: list[str] = []
    for el in d.element.body.iterchildren():
        if el.tag.endswith("}p"):
            p = Paragraph(el, d)
            style = (p.style.name if p.style is not None else "") or ""
            level = re.match(r"(?:Heading|Title)\s*(\d?)", style)
            if level and p.text.strip():
                parts.append("#" * int(level.group(1) or 1) + " " + p.text.strip())
            elif p.text.strip():
                parts.append(p.text.strip())
        elif el.tag.endswith("}tbl"):
            rows = [[c.text for c in row.cells] for row in Table(el, d).rows]
            parts.append(markdown_table(rows))
    text = "\n\n".join(p for p in parts if p)
    return _record(path, text, None, d.core_properties.title or path.stem, "docx")


def markdown_table(rows: list[list[str]]) -> str:
    """Rows (the first is the header) as a Markdown pipe table."""
    rows = [[" ".join(c.split()).replace("|", "\\|") for c in r] for r in rows if r]
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * width]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows[1:]])


_HTML_SKIP = {"script", "style", "noscript", "nav", "header", "footer", "form", "template", "svg", "head"}
_HTML_NAV = re.compile(r"nav|banner|breadcrumb|headerlink|\bmenu\b|\btoc\b|skip-?link|cookie", re.I)
"""Classes and ids of page furniture (navigation bars, banners, tables of contents, cookie notices)."""
_HTML_BLOCK = {
    "p", "div", "section", "article", "main", "body", "li", "ul", "ol", "dl", "dt", "dd", "blockquote",
    "pre", "table", "figure", "figcaption", "h1", "h2", "h3", "h4", "h5", "h6", "br", "hr", "tr",
}  # fmt: skip


def _html_markdown(path: Path) -> dict[str, Any]:
    """HTML as Markdown that keeps its structure: headings, paragraphs, lists, code blocks, tables (with
    their header row). Navigation, headers, footers and scripts are left out. Written here (on lxml, which
    trafilatura brings) because trafilatura, tuned for articles, drops the headings of manuals and docs."""
    import lxml.html

    root = lxml.html.fromstring(_read_text(path).encode("utf-8"))
    title = (root.findtext(".//title") or "").strip() or path.stem
    found = (root.find(p) for p in (".//main", ".//*[@role='main']", ".//body"))
    main = next((el for el in found if el is not None), root)
    blocks: list[str] = []
    _html_blocks(main, blocks)
    text = "\n\n".join(b for b in blocks if b.strip())
    return _record(path, text, None, " ".join(title.split()), "html")


def _html_blocks(el: Any, out: list[str], prefix: str = "") -> None:
    inline: list[str] = []

    def flush() -> None:
        nonlocal prefix
        text = " ".join("".join(inline).split())
        inline.clear()
        if text:
            out.append(prefix + text)
            prefix = ""

    inline.append(el.text or "")
    for child in el:
        tag = child.tag.lower() if isinstance(child.tag, str) else ""
        where = f"{child.get('class', '')} {child.get('id', '')}"
        if not tag or tag in _HTML_SKIP or _HTML_NAV.search(where):
            inline.append(child.tail or "")
            continue
        if tag in _HTML_BLOCK:
            flush()
            if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
                heading = " ".join(child.text_content().split())
                if heading:
                    out.append("#" * int(tag[1]) + " " + heading)
            elif tag == "pre":
                out.append("```\n" + child.text_content().strip("\n") + "\n```")
            elif tag == "table":
                rows = [
                    [" ".join(c.text_content().split()) for c in tr if c.tag in ("td", "th")]
                    for tr in child.iter("tr")
                ]
                out.append(markdown_table([r for r in rows if any(r)]))
            elif tag == "li":
                _html_blocks(child, out, "- ")
            elif tag not in ("br", "hr"):
                _html_blocks(child, out)
        else:
            inline.append(child.text_content())
        inline.append(child.tail or "")
    flush()


def _html(path: Path) -> dict[str, Any]:
    import trafilatura

    doc = trafilatura.bare_extraction(_read_text(path), with_metadata=True, include_tables=True)
    text = (doc.text if doc else "") or ""
    return _record(path, text, None, (doc.title if doc else None) or path.stem, "html")


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    for n, row in enumerate(io.read_records(path), 1):
        if row.record is None:
            continue  # a malformed line in a data file is not a document; `data convert` reports these
        r = row.record
        title = r.get("title") if isinstance(r.get("title"), str) else path.stem
        if isinstance(r.get("question"), str) and isinstance(r.get("answer"), str):  # a Q&A pair
            yield {**_record(path, f"Q: {r['question']}\nA: {r['answer']}", None, title, "qa"), "row": n}
            continue
        text = next((r[k] for k in TEXT_FIELDS if isinstance(r.get(k), str)), None)
        if text is None:
            text = json.dumps(r, ensure_ascii=False, default=str)
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
