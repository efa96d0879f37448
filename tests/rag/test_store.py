"""The store contract, run on LanceDB and on qdrant-client's local mode: rows, versions, filters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from llmworks.rag.store import Filter, Store, open_store


def rows(kb: str, n: int, version: int = 1) -> tuple[list[dict], np.ndarray]:
    rng = np.random.default_rng(n)
    vectors = rng.standard_normal((n, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    out = [
        {
            "id": f"{i:032x}",
            "kb": kb,
            "text": f"chunk {i}",
            "source": f"/docs/{'a.md' if i % 2 else 'b.pdf'}",
            "page": i if i % 2 == 0 else None,
            "heading": "H",
            "start": 0,
            "end": 7,
            "row": None,
            "kind": "text",
            "hash": f"{i:032x}",
            "tags": ["odd"] if i % 2 else [],
            "added": version,
            "removed": 0,
        }
        for i in range(n)
    ]
    return out, vectors


@pytest.fixture(params=["lancedb", "qdrant"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = "lancedb" if request.param == "lancedb" else f"qdrant://{tmp_path / 'qdrant'}"  # local mode
    s = open_store(url, tmp_path, "kb1", 8)
    yield s
    s.close()


def test_add_search_fetch_count(store: Store) -> None:
    data, vectors = rows("kb1", 10)
    store.add(data, vectors)
    flt = Filter(("kb1",), 1)
    hits = store.search(vectors[3], 3, flt)
    assert hits[0].id == data[3]["id"] and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].payload["text"] == "chunk 3" and hits[0].payload["page"] is None
    got = store.fetch([data[2]["id"], data[5]["id"]], flt)
    assert set(got) == {data[2]["id"], data[5]["id"]} and got[data[2]["id"]]["page"] == 2
    assert store.count(flt) == 10 and len(store.states()) == 10


def test_a_filter_without_the_kb_sees_nothing(store: Store) -> None:
    data, vectors = rows("kb1", 4)
    store.add(data, vectors)
    other = Filter(("kb2",), 1)
    assert store.search(vectors[0], 4, other) == [] and store.fetch([data[0]["id"]], other) == {}
    assert store.count(other) == 0 and store.count(Filter((), 1)) == 0


def test_versions_hide_pending_rows_and_removals(store: Store) -> None:
    data, vectors = rows("kb1", 6)
    store.add(data[:4], vectors[:4])
    pending, _pv = rows("kb1", 6, version=2)
    store.add(pending[4:], vectors[4:])  # written by version 2, not committed
    store.mark([data[0]["id"]], removed=2)
    v1, v2 = Filter(("kb1",), 1), Filter(("kb1",), 2)
    assert store.count(v1) == 4 and store.count(v2) == 5
    assert data[0]["id"] in store.fetch([data[0]["id"]], v1)
    assert data[0]["id"] not in store.fetch([data[0]["id"]], v2)
    assert all(h.id != data[4]["id"] for h in store.search(vectors[4], 6, v1))
    assert store.states()[data[0]["id"]] == (1, 2)
    assert store.purge(2) == 1 and data[0]["id"] not in store.states()
    store.delete([data[1]["id"]])
    assert store.count(v2) == 4 and store.count(v1) == 2


def test_source_and_tag_filters(store: Store) -> None:
    data, vectors = rows("kb1", 8)
    store.add(data, vectors)
    pdf = Filter(("kb1",), 1, sources=("/docs/b.pdf",))
    assert {h.payload["source"] for h in store.search(vectors[1], 8, pdf)} == {"/docs/b.pdf"}
    assert store.count(Filter(("kb1",), 1, sources=())) == 0
    odd = Filter(("kb1",), 1, tags=("odd",))
    assert {h.payload["tags"][0] for h in store.search(vectors[0], 8, odd)} == {"odd"}
    assert store.count(odd) == 4


def test_drop_leaves_nothing(store: Store, tmp_path: Path) -> None:
    data, vectors = rows("kb1", 3)
    store.add(data, vectors)
    store.drop()
    store.close()
    again = open_store(store.url, tmp_path, "kb1", 8)
    assert again.states() == {} and again.count(Filter(("kb1",), 1)) == 0
    again.close()


def test_unknown_scheme_is_one_clear_error(tmp_path: Path) -> None:
    from llmworks.errors import UserError

    with pytest.raises(UserError, match=r"unknown store 'redis://x'.*lancedb"):
        open_store("redis://x", tmp_path, "kb1", 8)


def test_lancedb_indexes_large_tables_with_ivf_sq_and_still_finds_rows(tmp_path: Path) -> None:
    """From ANN_MIN_ROWS rows on, `optimize` builds the IVF_SQ index (and re-indexes a table that has
    another kind, as an older llmworks built); a row's own vector still finds it first."""
    from lancedb.index import IvfFlat

    from llmworks.rag.store.lance import ANN_MIN_ROWS, VECTOR_INDEX

    s = open_store("lancedb", tmp_path, "kb1", 8)
    data, vectors = rows("kb1", ANN_MIN_ROWS)
    s.add(data, vectors)
    s._table.create_index("vector", config=IvfFlat(distance_type="cosine", num_partitions=4))  # type: ignore[attr-defined]
    s.optimize()
    assert s._table.index_stats("vector_idx").index_type == VECTOR_INDEX  # type: ignore[attr-defined]
    flt = Filter(("kb1",), 1)
    for i in (0, 1234, ANN_MIN_ROWS - 1):
        hit = s.search(vectors[i], 5, flt)[0]
        assert hit.id == data[i]["id"] and hit.score == pytest.approx(1.0, abs=0.02)
