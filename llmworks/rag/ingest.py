"""Ingest: parse (the data stage's parser), chunk, embed, index; incremental, versioned, resumable.

Each ingest that changes anything is a new version. A file whose bytes (and chunking and tags) are
unchanged keeps its chunks; a changed file is parsed again, and only chunks whose text is new are embedded
(the embedding cache is keyed by embedder + content hash). Chunks of changed, deleted or no longer found
files leave every index: the store (removal marks, purged after the commit) and BM25 (rebuilt per
version). The commit is one atomic write of CURRENT, after the store, BM25 index and manifest of the new
version are complete: until then readers see the previous version, and Ctrl-C loses nothing (embedded
batches stay in the cache; rows written are invisible until committed, and the next run reuses them).
A rollback is a new version whose files are an old version's.
"""

from __future__ import annotations

import hashlib
import shutil
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmworks.errors import UserError
from llmworks.rag.bm25 import BM25Index
from llmworks.rag.chunk import Chunk, chunk_record
from llmworks.rag.embed import BATCH, EmbeddingCache
from llmworks.rag.layout import KBPaths, Manifest
from llmworks.rag.store import Store

if TYPE_CHECKING:
    from llmworks.rag.kb import KnowledgeBase

__all__ = ["IngestReport", "ingest", "rollback"]

RECORD_FIELDS = ("id", "text", "source", "page", "heading", "start", "end", "row", "kind", "hash", "tags")


@dataclass
class IngestReport:
    kb: str
    version: int
    """The committed version after this run (unchanged when nothing changed)."""
    new_version: bool = False
    files: int = 0
    pages: int = 0
    """PDF pages and other documents parsed in this run."""
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    """Files of the previous version that are gone from the given paths."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(file, reason): unreadable, encrypted or unsupported; a file skipped now keeps its earlier chunks."""
    chunks: int = 0
    """Chunks in the committed version."""
    chunks_added: int = 0
    chunks_removed: int = 0
    embedded: int = 0
    """Chunks embedded in this run (the rest came from the cache or were unchanged)."""
    seconds: float = 0.0

    def line(self) -> str:
        if not self.new_version:
            return (
                f"{self.kb}: up to date at version {self.version} ({self.chunks} chunks, {self.files} files)"
            )
        return (
            f"{self.kb}: version {self.version}: {self.chunks} chunks from {self.files} files "
            f"({len(self.new)} new, {len(self.changed)} changed, {self.unchanged} unchanged, "
            f"{len(self.removed)} removed, {len(self.skipped)} skipped); "
            f"+{self.chunks_added}/-{self.chunks_removed} chunks, {self.embedded} embedded, "
            f"{self.pages} pages parsed in {self.seconds:.1f}s"
        )


def ingest(kb: KnowledgeBase, paths: Iterable[Path | str], tags: Sequence[str] = ()) -> IngestReport:
    from llmworks.data.io import check_exists
    from llmworks.data.parse import find_files

    started = time.perf_counter()
    given = check_exists(paths)
    roots = [p.resolve() for p in given]
    files = [f.resolve() for f in find_files(given)]
    with kb.paths.lock():
        work = kb.open_for_write()
        prev = work.read_manifest(kb.current) if kb.current else Manifest(0, "", "")
        report = IngestReport(kb.name, kb.current, files=0)
        found = {str(f) for f in files}
        target: dict[str, dict[str, Any]] = {}
        for src, entry in prev.files.items():  # files outside the given paths stay as they are
            if src not in found and not any(_under(Path(src), r) for r in roots):
                target[src] = entry
            elif src not in found:
                report.removed.append(src)
        chunking = f"{kb.meta.chunk_tokens}/{kb.meta.overlap_tokens}"
        fresh: dict[str, Chunk] = {}
        fresh_tags: dict[str, list[str]] = {}
        from llmworks.data.progress import advance, progress

        with progress("parse", len(files), unit="items") as bar:
            for f in files:
                src = str(f)
                entry = prev.files.get(src)
                file_tags = sorted(set(tags)) if tags else list((entry or {}).get("tags", []))
                try:
                    digest = _sha256(f)
                except OSError as e:
                    report.skipped.append((src, f"unreadable ({e.strerror or e})"))
                    _keep(target, src, entry)
                    advance(bar)
                    continue
                if (
                    entry
                    and entry["sha256"] == digest
                    and entry.get("chunking") == chunking
                    and entry.get("tags", []) == file_tags
                ):
                    target[src] = entry
                    report.unchanged += 1
                    advance(bar)
                    continue
                try:
                    chunks, pages, fmt = _parse_and_chunk(f, kb)
                except UserError as e:
                    report.skipped.append((src, e.problem))
                    _keep(target, src, entry)
                    advance(bar)
                    continue
                except Exception as e:  # a broken file: reported, the ingest goes on
                    report.skipped.append((src, _reason(e)))
                    _keep(target, src, entry)
                    advance(bar)
                    continue
                report.pages += pages
                ids = _chunk_ids(src, chunks, file_tags)
                for i, c in zip(ids, chunks, strict=True):
                    fresh[i] = c
                    fresh_tags[i] = file_tags
                (report.changed if entry else report.new).append(src)
                target[src] = {
                    "sha256": digest,
                    "size": f.stat().st_size,
                    "chunking": chunking,
                    "tags": file_tags,
                    "format": fmt,
                    "pages": pages,
                    "chunks": ids,
                }
                advance(bar)
        report.files = len(target)
        if not (report.new or report.changed or report.removed) and kb.current:
            report.chunks = len(prev.ids)
            report.seconds = time.perf_counter() - started
            return report
        note = _note(report)
        commit = _commit(kb, work, target, fresh, fresh_tags, note, report)
        report.version, report.new_version = commit, True
        report.seconds = time.perf_counter() - started
        return report


def rollback(kb: KnowledgeBase, version: int) -> IngestReport:
    """A new version with the files (and chunks) of `version`."""
    started = time.perf_counter()
    with kb.paths.lock():
        work = kb.open_for_write()
        old = work.read_manifest(version)
        report = IngestReport(kb.name, kb.current, files=len(old.files))
        _commit(kb, work, old.files, {}, {}, f"rollback to version {version}", report)
        report.version, report.new_version = kb.current, True
        report.seconds = time.perf_counter() - started
        return report


def _commit(
    kb: KnowledgeBase,
    work: KBPaths,
    files: dict[str, dict[str, Any]],
    fresh: dict[str, Chunk],
    fresh_tags: dict[str, list[str]],
    note: str,
    report: IngestReport,
) -> int:
    """Write version N (store rows, BM25, manifest), then commit it (CURRENT), then clean up."""
    current = kb.current
    version = max([current, *work.version_numbers()]) + 1
    target_ids = list(dict.fromkeys(i for f in files.values() for i in f["chunks"]))
    if not target_ids:
        if not kb.paths.exists:
            shutil.rmtree(work.dir, ignore_errors=True)  # nothing half-written for a new knowledge base
        raise UserError(
            f"no text to index for {kb.name!r}: the corpus is empty ({len(report.skipped)} files skipped).",
            "Give files with text (PDF, DOCX, HTML, Markdown, TXT, JSONL/CSV records).",
        )
    archive = ChunkArchive(work.chunks)
    known = archive.load()
    new_records = {i: _record(i, c, fresh_tags.get(i, [])) for i, c in fresh.items() if i not in known}
    records = {**known, **new_records}
    missing = [i for i in target_ids if i not in records]
    if missing:
        raise work.corrupt(f"{len(missing)} chunks of the manifest are missing from chunks/")
    cache = EmbeddingCache(work.cache, kb.meta.embedder, kb.meta.dim)
    report.embedded = _embed_missing(kb, cache, [records[i] for i in target_ids])
    archive.write(version, list(new_records.values()))

    store = kb.store_for(work)
    added, removed = _reconcile(store, kb.name, current, version, target_ids, records, cache)
    report.chunks_added, report.chunks_removed, report.chunks = added, removed, len(target_ids)

    bm25_dir = work.bm25(version)
    tmp = bm25_dir.with_name(f".{bm25_dir.name}.{uuid.uuid4().hex[:8]}.part")
    BM25Index.build(target_ids, [_index_text(records[i]) for i in target_ids]).save(tmp)
    _write_meta(tmp, target_ids, records)
    if bm25_dir.exists():
        shutil.rmtree(bm25_dir)  # left by an interrupted run of the same version number
    tmp.rename(bm25_dir)

    work.write_manifest(Manifest(version, datetime.now(UTC).isoformat(timespec="seconds"), note, dict(files)))
    work.write_current(version)  # the commit: readers now see this version
    if not kb.paths.exists:  # a new knowledge base appears whole
        store.close()
        work.dir.rename(kb.paths.dir)
    kb.reload()  # this process's reader moves on too
    store = kb.store
    store.purge(version)
    store.optimize()
    for old in (kb.paths.dir / "bm25").iterdir():
        if old.name.isdigit() and int(old.name) < current:
            shutil.rmtree(old, ignore_errors=True)
    return version


def _reconcile(
    store: Store,
    kb: str,
    current: int,
    version: int,
    target: list[str],
    records: dict[str, dict[str, Any]],
    cache: EmbeddingCache,
) -> tuple[int, int]:
    """Make the store hold exactly `target` at `version`, invisibly to readers of `current`. Rows left by
    an interrupted run (added or removed after `current`) are reused or undone."""
    wanted = set(target)
    present: set[str] = set()
    relabel, unremove, remove, delete = [], [], [], []
    for cid, (added, removed) in store.states().items():
        pending_add = added > current
        dead = 0 < removed <= current
        if dead or (pending_add and cid not in wanted):
            delete.append(cid)
            continue
        if cid in wanted:
            present.add(cid)
            if pending_add and added != version:
                relabel.append(cid)
            if removed:
                unremove.append(cid)
        elif removed != version:
            remove.append(cid)
    store.delete(delete)
    store.mark(relabel, added=version)
    store.mark(unremove, removed=0)
    store.mark(remove, removed=version)
    todo = [i for i in target if i not in present]
    for start in range(0, len(todo), 1000):
        part = todo[start : start + 1000]
        rows = [{**records[i], "kb": kb, "added": version, "removed": 0} for i in part]
        store.add(rows, cache.get([records[i]["hash"] for i in part]))
    return len(todo), len(remove)


def _embed_missing(kb: KnowledgeBase, cache: EmbeddingCache, records: list[dict[str, Any]]) -> int:
    from llmworks.data.progress import advance, progress

    todo: dict[str, str] = {}
    for r in records:
        if r["hash"] not in cache and r["hash"] not in todo:
            todo[r["hash"]] = _index_text(r)
    if not todo:
        return 0
    keys = list(todo)
    with progress("embed", len(keys), unit="items") as bar:
        for start in range(0, len(keys), BATCH):
            part = keys[start : start + BATCH]
            cache.put(part, kb.embedder.embed([todo[k] for k in part]))
            advance(bar, len(part))
    return len(keys)


class ChunkArchive:
    """Every chunk record ever made, in Parquet segments written once each (a version's new chunks)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def load(self) -> dict[str, dict[str, Any]]:
        import pyarrow.parquet as pq

        out: dict[str, dict[str, Any]] = {}
        for seg in sorted(self.dir.glob("*.parquet")) if self.dir.is_dir() else []:
            for r in pq.read_table(seg).to_pylist():
                out[r["id"]] = r
        return out

    def write(self, version: int, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        from llmworks.atomic import temp_path

        self.dir.mkdir(parents=True, exist_ok=True)
        out = self.dir / f"{version:06d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = temp_path(out, "seg")
        table = pa.Table.from_pylist(
            [{k: r.get(k) for k in RECORD_FIELDS} for r in records],
            schema=pa.schema(
                [
                    ("id", pa.string()),
                    ("text", pa.string()),
                    ("source", pa.string()),
                    ("page", pa.int32()),
                    ("heading", pa.string()),
                    ("start", pa.int64()),
                    ("end", pa.int64()),
                    ("row", pa.int64()),
                    ("kind", pa.string()),
                    ("hash", pa.string()),
                    ("tags", pa.list_(pa.string())),
                ]
            ),
        )
        pq.write_table(table, tmp)
        tmp.rename(out)


def _parse_and_chunk(path: Path, kb: KnowledgeBase) -> tuple[list[Chunk], int, str]:
    from llmworks.data.parse import parse_file

    chunks: list[Chunk] = []
    pages, fmt = 0, ""
    for rec in parse_file(path, markdown=True):
        pages += 1
        fmt = rec.get("format", fmt)
        rec["source"] = str(path)
        if rec["text"].strip():
            chunks += chunk_record(rec, kb.embedder.counter, kb.meta.chunk_tokens, kb.meta.overlap_tokens)
    return chunks, pages, fmt


def _chunk_ids(source: str, chunks: list[Chunk], tags: list[str]) -> list[str]:
    """Stable ids: the same text at the same place of the same file keeps its id across versions."""
    seen: dict[str, int] = {}
    ids = []
    for c in chunks:
        n = seen.get(c.hash, 0)
        seen[c.hash] = n + 1
        key = f"{source}\0{c.hash}\0{n}\0{','.join(tags)}"
        ids.append(hashlib.sha256(key.encode("utf-8")).hexdigest()[:32])
    return ids


def _record(cid: str, c: Chunk, tags: list[str]) -> dict[str, Any]:
    return {
        "id": cid,
        "text": c.text,
        "source": c.source,
        "page": c.page,
        "heading": c.heading,
        "start": c.start,
        "end": c.end,
        "row": c.row,
        "kind": c.kind,
        "hash": c.hash,
        "tags": list(tags),
    }


def _index_text(r: dict[str, Any]) -> str:
    return f"{r['heading']}\n{r['text']}" if r.get("heading") else r["text"]


def _write_meta(directory: Path, ids: list[str], records: dict[str, dict[str, Any]]) -> None:
    """Per-document source and tags beside the BM25 index, for filters."""
    import json

    sources = sorted({records[i]["source"] for i in ids})
    at = {s: n for n, s in enumerate(sources)}
    meta = {
        "sources": sources,
        "source_of": [at[records[i]["source"]] for i in ids],
        "tags": [records[i].get("tags") or [] for i in ids],
    }
    (directory / "docs.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")


def _keep(target: dict[str, dict[str, Any]], src: str, entry: dict[str, Any] | None) -> None:
    if entry is not None:
        target[src] = entry


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _note(r: IngestReport) -> str:
    return (
        f"ingest: {len(r.new)} new, {len(r.changed)} changed, {len(r.removed)} removed, "
        f"{r.unchanged} unchanged, {len(r.skipped)} skipped files"
    )


def _reason(e: Exception) -> str:
    msg = str(e).strip() or type(e).__name__
    return msg.splitlines()[0][:200]
