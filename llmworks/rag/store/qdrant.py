"""The scale-out store: Qdrant through `qdrant-client`, one collection per knowledge base, payload filters
(indexed on the filtered fields). `qdrant://HOST:PORT` is a server or a cluster's entry point;
`qdrant:///PATH` (or `qdrant://` alone: inside the knowledge base's directory) is qdrant-client's local
mode, pure Python, meant for tests and small trials (it warns above 20k points)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np

from llmworks.errors import UserError
from llmworks.rag.store.base import PAYLOAD, Filter, Store, StoredHit, batches

BATCH = 256
"""Points per upsert / id-list request."""


class QdrantStore(Store):
    def __init__(self, url: str, local_dir: Path, kb: str, dim: int) -> None:
        from qdrant_client import QdrantClient, models

        self.url = url
        self.kb = kb
        self.dim = dim
        self._m = models
        parsed = urlparse(url)
        self.collection = f"llmworks_{kb}"
        if parsed.hostname:
            opts = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
            self._client = QdrantClient(
                host=parsed.hostname,
                port=parsed.port or 6333,
                api_key=opts.get("api_key"),
                https=opts.get("https") in ("1", "true"),
                prefer_grpc=opts.get("grpc") in ("1", "true"),
                timeout=int(opts.get("timeout", 30)),
            )
        else:
            path = Path(parsed.path) if parsed.path not in ("", "/") else local_dir
            path.mkdir(parents=True, exist_ok=True)
            self._client = QdrantClient(path=str(path))
        try:
            exists = self._client.collection_exists(self.collection)
        except Exception as e:  # connection refused, TLS, auth: the user's setup
            raise UserError(
                f"cannot reach Qdrant at {url} ({e}).", "Start the server or fix --store."
            ) from None
        if not exists:
            self._client.create_collection(
                self.collection,
                vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
            )
            indexed = {"kb": "KEYWORD", "id": "KEYWORD", "source": "KEYWORD", "tags": "KEYWORD"}
            indexed |= {"added": "INTEGER", "removed": "INTEGER"}
            for name, kind in indexed.items() if parsed.hostname else ():  # local mode has no indexes
                schema = getattr(models.PayloadSchemaType, kind)
                self._client.create_payload_index(self.collection, name, field_schema=schema)

    def add(self, rows: Sequence[Mapping[str, Any]], vectors: np.ndarray) -> None:
        m = self._m
        for i in range(0, len(rows), BATCH):
            points = [
                m.PointStruct(
                    id=_point_id(r["id"]),
                    vector=np.asarray(v, dtype=np.float32).tolist(),
                    payload={k: r.get(k) for k in (*PAYLOAD, "added", "removed")},
                )
                for r, v in zip(rows[i : i + BATCH], vectors[i : i + BATCH], strict=True)
            ]
            self._client.upsert(self.collection, points, wait=True)

    def mark(self, ids: Iterable[str], **columns: int) -> None:
        for part in batches(ids, BATCH):
            self._client.set_payload(
                self.collection, payload=dict(columns), points=[_point_id(i) for i in part], wait=True
            )

    def delete(self, ids: Iterable[str]) -> None:
        for part in batches(ids, BATCH):
            self._client.delete(
                self.collection,
                points_selector=self._m.PointIdsList(points=[_point_id(i) for i in part]),
                wait=True,
            )

    def purge(self, version: int) -> int:
        m = self._m
        flt = m.Filter(must=[m.FieldCondition(key="removed", range=m.Range(gt=0, lte=version))])
        n = self._client.count(self.collection, count_filter=flt, exact=True).count
        if n:
            self._client.delete(self.collection, points_selector=m.FilterSelector(filter=flt), wait=True)
        return n

    def states(self) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        offset = None
        while True:
            records, offset = self._client.scroll(
                self.collection,
                limit=1000,
                offset=offset,
                with_payload=["id", "added", "removed"],
                with_vectors=False,
            )
            for r in records:
                p = r.payload or {}
                out[p["id"]] = (int(p["added"]), int(p["removed"]))
            if offset is None:
                return out

    def search(self, vector: np.ndarray, k: int, flt: Filter) -> list[StoredHit]:
        points = self._client.query_points(
            self.collection,
            query=np.asarray(vector, dtype=np.float32).tolist(),
            query_filter=self._filter(flt),
            limit=k,
            with_payload=True,
        ).points
        return [StoredHit(uuid.UUID(str(p.id)).hex, float(p.score), dict(p.payload or {})) for p in points]

    def fetch(self, ids: Sequence[str], flt: Filter) -> dict[str, dict[str, Any]]:
        m = self._m
        out: dict[str, dict[str, Any]] = {}
        for part in batches(ids, BATCH):
            base = self._filter(flt)
            cond = m.Filter(must=[*(base.must or []), m.HasIdCondition(has_id=[_point_id(i) for i in part])])
            records, _ = self._client.scroll(
                self.collection, scroll_filter=cond, limit=len(part), with_payload=True, with_vectors=False
            )
            out.update({r.payload["id"]: dict(r.payload) for r in records})
        return out

    def count(self, flt: Filter) -> int:
        return self._client.count(self.collection, count_filter=self._filter(flt), exact=True).count

    def drop(self) -> None:
        if self._client.collection_exists(self.collection):
            self._client.delete_collection(self.collection)

    def close(self) -> None:
        self._client.close()

    def _filter(self, flt: Filter) -> Any:
        m = self._m
        must: list[Any] = [
            m.FieldCondition(key="kb", match=m.MatchAny(any=list(flt.kbs) or ["\0none"])),
            m.FieldCondition(key="added", range=m.Range(lte=flt.version)),
            m.Filter(
                should=[
                    m.FieldCondition(key="removed", match=m.MatchValue(value=0)),
                    m.FieldCondition(key="removed", range=m.Range(gt=flt.version)),
                ]
            ),
        ]
        if flt.sources is not None:
            must.append(m.FieldCondition(key="source", match=m.MatchAny(any=list(flt.sources) or ["\0none"])))
        if flt.tags:
            must.append(m.FieldCondition(key="tags", match=m.MatchAny(any=list(flt.tags))))
        return m.Filter(must=must)


def _point_id(chunk_id: str) -> str:
    """Qdrant ids are integers or UUIDs; a chunk id is 32 hex digits, i.e. a UUID."""
    return str(uuid.UUID(hex=chunk_id))
