"""Ingest end to end on real files, the real embedded embedder and real stores: incremental updates without
duplicates or orphans, versions and rollback, a reader that picks up new versions, Ctrl-C, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmworks.errors import UserError
from llmworks.rag import ingest as ingest_module
from llmworks.rag.embed import DenseEmbedder
from llmworks.rag.kb import KnowledgeBase, list_knowledge_bases
from llmworks.rag.layout import KBPaths

from .conftest import make_pdf, write_corpus

pytestmark = pytest.mark.slow  # the real embedding model


def consistent(kb: KnowledgeBase) -> list[str]:
    """The version's chunk ids, after checking every index holds exactly them (no duplicates, no orphans)."""
    kb.refresh()
    ids = kb.paths.read_manifest(kb.current).ids
    assert len(ids) == len(set(ids))
    live = {i for i, (a, r) in kb.store.states().items() if a <= kb.current and (r == 0 or r > kb.current)}
    assert live == set(ids) == set(kb.bm25.ids) and len(kb.bm25.ids) == len(ids)
    assert all(r == 0 for _, r in kb.store.states().values())  # removed rows were purged
    return ids


def sources(hits) -> list[str]:
    return [Path(h.source).name for h in hits]


def test_edit_delete_re_add_and_rollback(corpus: Path, kb_dir: Path) -> None:
    kb = KnowledgeBase("widget", kb_dir)
    r1 = kb.ingest([corpus])
    assert r1.version == 1 and r1.files == 4 and not r1.skipped
    assert r1.embedded == r1.chunks == r1.chunks_added == len(consistent(kb))
    assert sources(kb.search("how long is the warranty?", k=1)) == ["faq.jsonl"]
    calib = kb.search("how often should the humidity sensor be calibrated", k=1)[0]
    assert "six months" in calib.text and calib.heading == "Widget Guide > Calibration"
    page = kb.search("how do I clean the sensor grille", k=1)[0]
    assert (Path(page.source).name, page.page) == ("manual.pdf", 2)
    assert set(page.scores) >= {"dense", "bm25", "fused"}

    reader = KnowledgeBase("widget", kb_dir)  # e.g. a running `llmworks serve --kb widget`
    assert reader.search("nftables 规则文件", k=1)[0].source.endswith("zh.md")

    guide = corpus / "guide.md"
    guide.write_text(guide.read_text().replace("every six months", "every three weeks"))
    (corpus / "zh.md").unlink()
    (corpus / "new.md").write_text("# Recycling\n\nReturn a broken widget to any electronics recycler.\n")
    r2 = kb.ingest([corpus])
    assert r2.version == 2 and r2.changed == [str(guide.resolve())]
    assert [Path(p).name for p in r2.removed] == ["zh.md"] and [Path(p).name for p in r2.new] == ["new.md"]
    assert r2.embedded == 2  # the edited Calibration chunk and new.md's chunk; nothing else
    assert r2.chunks_removed == 1 + 2  # the old Calibration chunk and zh.md's two sections
    ids2 = consistent(kb)
    assert len(ids2) == r1.chunks - 3 + 2
    assert "three weeks" in kb.search("humidity sensor calibration interval", k=1)[0].text
    assert all("six months" not in h.text for h in kb.search("humidity sensor calibration", k=10))
    assert "zh.md" not in sources(kb.search("防火墙规则文件 nftables", k=10))
    assert "zh.md" not in sources(reader.search("防火墙规则文件 nftables", k=10))  # no restart needed

    (corpus / "zh.md").write_text(
        (Path(__file__).parent / "conftest.py").read_text().split('ZH = """')[1].split('"""')[0]
    )
    r3 = kb.ingest([corpus])
    assert r3.version == 3 and r3.embedded == 0 and r3.chunks_added == 2  # vectors from the cache
    assert sources(kb.search("防火墙规则文件在哪里", k=1)) == ["zh.md"]
    consistent(kb)

    assert not kb.ingest([corpus]).new_version  # nothing changed: no new version

    r4 = kb.rollback(1)
    assert r4.version == 4 and r4.embedded == 0
    assert set(consistent(kb)) == set(kb.paths.read_manifest(1).ids)
    assert "six months" in reader.search("humidity sensor calibration", k=1)[0].text
    info = kb.info()
    assert info["version"] == 4 and [v["note"] for v in info["versions"]][-1] == "rollback to version 1"


def test_filters_tags_and_several_kbs(corpus: Path, kb_dir: Path, tmp_path: Path) -> None:
    kb = KnowledgeBase("widget", kb_dir)
    kb.ingest([corpus / "guide.md", corpus / "manual.pdf"], tags=["manuals"])
    kb.ingest([corpus / "faq.jsonl"])
    assert sources(kb.search("widget", k=10, sources=["*.pdf"])) == ["manual.pdf", "manual.pdf"]
    tagged = kb.search("widget", k=10, tags=["manuals"])
    assert tagged and "faq.jsonl" not in sources(tagged)
    other = KnowledgeBase("other", kb_dir)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "pets.md").write_text(
        "# Pets\n\nThe office cat is called Ginger and likes the widget.\n"
    )
    other.ingest([tmp_path / "o"])
    from llmworks.rag.kb import search
    from llmworks.rag.retrieve import retrieve

    both = search([kb, other], "what is the office cat called", k=3)
    assert both[0].kb == "other" and {h.kb for h in both} == {"widget", "other"}
    from llmworks.rag.config import SearchOptions

    only = retrieve([kb, other], "what is the office cat called", SearchOptions(k=5), allowed=["widget"])
    assert only.hits and {h.kb for h in only.hits} == {"widget"}
    assert list_knowledge_bases(kb_dir) == ["other", "widget"]


def test_ctrl_c_keeps_the_served_version_and_the_next_run_resumes(
    corpus: Path, kb_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kb = KnowledgeBase("widget", kb_dir)
    kb.ingest([corpus / "guide.md"])
    before = consistent(kb)
    big = corpus / "big.md"
    big.write_text(
        "# Big\n\n" + "\n\n".join(f"Paragraph {i} is about part number {i * 7919}." for i in range(40))
    )
    monkeypatch.setattr(ingest_module, "BATCH", 4)
    real_embed = type(kb.embedder).embed
    calls = {"n": 0}

    def interrupted(self, texts):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_embed(self, texts)

    monkeypatch.setattr(type(kb.embedder), "embed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        kb.ingest([corpus])
    reader = KnowledgeBase("widget", kb_dir)
    assert reader.current == 1 and consistent(reader) == before  # the last complete version is served
    monkeypatch.setattr(type(kb.embedder), "embed", real_embed)

    real_add = type(kb.store).add
    adds = {"n": 0}

    def add_then_stop(self, rows, vectors):
        adds["n"] += 1
        real_add(self, rows[:3], vectors[:3])  # half a write, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(type(kb.store), "add", add_then_stop)
    with pytest.raises(KeyboardInterrupt):
        kb.ingest([corpus])
    assert KnowledgeBase("widget", kb_dir).current == 1 and consistent(reader) == before
    monkeypatch.setattr(type(kb.store), "add", real_add)

    r = kb.ingest([corpus])  # resumes: what was embedded before the interruptions is not embedded again
    assert r.version == 2 and r.embedded < r.chunks_added
    consistent(kb)
    assert "part number" in kb.search("which part number does paragraph 12 mention", k=1)[0].text


def test_an_interrupted_first_ingest_resumes_and_appears_whole(
    corpus: Path, kb_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kb = KnowledgeBase("fresh", kb_dir)
    monkeypatch.setattr(ingest_module, "BATCH", 2)
    real_embed = DenseEmbedder.embed
    calls = {"n": 0}

    def interrupted(self, texts):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_embed(self, texts)

    monkeypatch.setattr(DenseEmbedder, "embed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        kb.ingest([corpus])
    assert list_knowledge_bases(kb_dir) == [] and (kb_dir / ".fresh.partial").is_dir()
    with pytest.raises(UserError, match="no knowledge base 'fresh'"):
        KnowledgeBase("fresh", kb_dir).search("widget")
    monkeypatch.setattr(DenseEmbedder, "embed", real_embed)
    r = KnowledgeBase("fresh", kb_dir).ingest([corpus])
    assert r.version == 1 and 0 < r.embedded < r.chunks
    assert list_knowledge_bases(kb_dir) == ["fresh"] and not (kb_dir / ".fresh.partial").exists()


def test_qdrant_local_store_end_to_end(corpus: Path, kb_dir: Path, tmp_path: Path) -> None:
    kb = KnowledgeBase("widget", kb_dir, store=f"qdrant://{tmp_path / 'qdrant'}")
    kb.ingest([corpus])
    assert sources(kb.search("warranty period", k=1)) == ["faq.jsonl"]
    (corpus / "zh.md").unlink()
    kb.ingest([corpus])
    consistent(kb)
    assert "zh.md" not in sources(kb.search("防火墙", k=10))
    assert kb.meta.store.startswith("qdrant://")


def test_bad_input(corpus: Path, kb_dir: Path, tmp_path: Path) -> None:
    make_pdf(corpus / "secret.pdf", ["classified"], password="hunter2")
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    kb = KnowledgeBase("widget", kb_dir)
    r = kb.ingest([corpus])
    assert {Path(f).name for f, _ in r.skipped} == {"secret.pdf", "broken.pdf"} and r.version == 1
    assert any("encrypted" in why for _, why in r.skipped)

    with pytest.raises(UserError, match=r"no knowledge base 'nope'.*widget"):
        KnowledgeBase("nope", kb_dir).search("x")
    other_embedder = tmp_path / "my-embedder"
    other_embedder.mkdir()
    with pytest.raises(UserError, match=r"built with embedder 'all-minilm-l6-v2', not '.*my-embedder'"):
        KnowledgeBase("widget", kb_dir, embedder=str(other_embedder)).search("x")
    with pytest.raises(UserError, match="unknown store 'redis://h'"):
        KnowledgeBase("widget", kb_dir, store="redis://h")

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "blank.txt").write_text("   \n")
    with pytest.raises(UserError, match="corpus is empty"):
        KnowledgeBase("blank", kb_dir).ingest([empty])
    assert list_knowledge_bases(kb_dir) == ["widget"] and not (kb_dir / ".blank.partial").exists()

    (kb_dir / "widget" / "CURRENT").write_text("garbage")
    with pytest.raises(UserError, match="is corrupt: unreadable CURRENT"):
        KnowledgeBase("widget", kb_dir)
    KBPaths(kb_dir, "widget").write_current(1)
    (kb_dir / "widget" / "kb.json").write_text("{not json")
    with pytest.raises(UserError, match=r"is corrupt.*llmworks rag rm widget"):
        KnowledgeBase("widget", kb_dir).search("x")


def test_remove(corpus: Path, kb_dir: Path) -> None:
    write_corpus(corpus)
    kb = KnowledgeBase("widget", kb_dir)
    kb.ingest([corpus / "guide.md"])
    kb.remove()
    assert list_knowledge_bases(kb_dir) == [] and not (kb_dir / "widget").exists()
