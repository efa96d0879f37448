"""Knowledge bases served as models (`llmworks serve --kb`): a real server on the embedded model, the real
openai client, real knowledge bases on disk, and chromium for the web chat's sources."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from llmworks.errors import UserError
from llmworks.serve.config import parse_kb_spec
from llmworks.testing.server import start_server, stop_server

from .conftest import write_corpus

QUESTION = "How long is the warranty period of the widget?"


def test_kb_specs() -> None:
    assert parse_kb_spec("manual") == ("manual", ["manual"])
    assert parse_kb_spec("docs=manual+faq") == ("docs", ["manual", "faq"])
    with pytest.raises(ValueError, match="ALIAS=NAME"):
        parse_kb_spec("docs=")


@dataclass
class RagServer:
    base: str
    kb_dir: Path
    docs: Path

    def client(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base + "/v1", api_key=key, max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def rag_server(embedded_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RagServer]:
    from llmworks.rag.kb import KnowledgeBase

    root = tmp_path_factory.mktemp("rag-serve")
    kb_dir = root / "kbs"
    docs = write_corpus(root / "docs")
    KnowledgeBase("widget", kb_dir).ingest([docs])
    (root / "pets").mkdir()
    (root / "pets" / "pets.md").write_text(
        "# Pets\n\nThe office cat is called Ginger. The warranty of the cat flap is one year.\n"
    )
    KnowledgeBase("pets", kb_dir).ingest([root / "pets"])
    access = root / "access.yaml"
    access.write_text("keys:\n  admin: '*'\n  petsonly: [pets]\n")
    server = start_server(
        [str(embedded_gguf), "--kb", "widget", "--kb", "pets", "--kb", "all=widget+pets", "--kb-dir",
         str(kb_dir), "--rag-access", str(access), "--api-key", "master"],
        root / "server.log",
    )  # fmt: skip
    yield RagServer(server.base, kb_dir, docs)
    stop_server(server)


@pytest.mark.slow
def test_models_and_access(rag_server: RagServer) -> None:
    admin = {m.id for m in rag_server.client("admin").models.list().data}
    assert {"rag:widget", "rag:pets", "rag:all"} <= admin
    listed = rag_server.client("petsonly").models.list().data
    limited = {m.id for m in listed if m.model_extra.get("engine") != "sentence-transformers"}
    assert limited == {"rag:pets", "rag:all"}  # no plain model, no knowledge base it may not read
    with pytest.raises(openai.NotFoundError):
        rag_server.client("petsonly").chat.completions.create(
            model="rag:widget", messages=[{"role": "user", "content": QUESTION}]
        )
    # rag:all spans both knowledge bases, but this key reads only pets: the store filter drops widget's chunks
    r = rag_server.client("petsonly").chat.completions.create(
        model="rag:all", messages=[{"role": "user", "content": QUESTION}], max_tokens=48
    )
    sources = r.model_extra["llmworks"]["sources"]
    assert sources and {s["kb"] for s in sources} == {"pets"}
    full = rag_server.client("admin").chat.completions.create(
        model="rag:all", messages=[{"role": "user", "content": QUESTION}], max_tokens=48
    )
    assert "widget" in {s["kb"] for s in full.model_extra["llmworks"]["sources"]}


@pytest.mark.slow
def test_answer_with_sources_streamed_and_not(rag_server: RagServer) -> None:
    c = rag_server.client("master")
    r = c.chat.completions.create(
        model="rag:widget", messages=[{"role": "user", "content": QUESTION}], max_tokens=48
    )
    data = r.model_extra["llmworks"]
    assert r.choices[0].message.content and not data["rag"]["refused"]
    first = data["sources"][0]
    assert first["source"].endswith("faq.jsonl") and "Two years" in first["text"] and first["n"] == 1
    assert set(first) >= {"where", "page", "heading", "cited", "score", "scores"}

    chunks = list(
        c.chat.completions.create(
            model="rag:widget", messages=[{"role": "user", "content": QUESTION}], max_tokens=48, stream=True
        )
    )
    last = next(ch for ch in chunks if ch.choices and ch.choices[0].finish_reason)
    assert last.model_extra["llmworks"]["sources"][0]["source"].endswith("faq.jsonl")
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text.strip()


@pytest.mark.slow
def test_out_of_scope_is_refused(rag_server: RagServer) -> None:
    r = rag_server.client("master").chat.completions.create(
        model="rag:widget", messages=[{"role": "user", "content": "What is the capital of France?"}]
    )
    assert r.choices[0].message.content == "I can't answer that from the knowledge base."
    assert r.model_extra["llmworks"]["rag"]["refused"]


@pytest.mark.slow
def test_a_new_version_is_served_without_restart(rag_server: RagServer) -> None:
    from llmworks.rag.kb import KnowledgeBase

    (rag_server.docs / "recycling.md").write_text(
        "# Recycling\n\nReturn a broken widget to the Zephyr recycling depot in Quillton.\n"
    )
    KnowledgeBase("widget", rag_server.kb_dir).ingest([rag_server.docs])
    r = rag_server.client("master").chat.completions.create(
        model="rag:widget",
        messages=[{"role": "user", "content": "Where do I return a broken widget for recycling?"}],
        max_tokens=32,
    )
    assert r.model_extra["llmworks"]["sources"][0]["source"].endswith("recycling.md")


@pytest.mark.slow
def test_web_chat_shows_clickable_sources(rag_server: RagServer) -> None:
    from playwright.sync_api import sync_playwright

    from llmworks.rag.kb import KnowledgeBase
    from llmworks.testing.browser import launch_chromium

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.set_default_timeout(180_000)
        page.goto(rag_server.base + "/")
        page.fill("#api-key", "master")
        page.dispatch_event("#api-key", "change")
        page.wait_for_selector("#model option[value='rag:widget']", state="attached")
        page.select_option("#model", "rag:widget")
        page.fill("#max-tokens", "48")
        # greedy: at the page's default 0.7 an answer now and then cites nothing, and no sources show
        page.eval_on_selector("#temperature", "e => { e.value = '0'; e.dispatchEvent(new Event('input')); }")
        page.fill("#prompt", QUESTION)
        page.click("#send")
        page.wait_for_selector(".msg.assistant .sources details")
        # Which sources the answer cites is the model's choice; each one shown is `[n] where`, opening to
        # that chunk's text.
        summary = page.locator(".msg.assistant .sources summary").first
        n, where = summary.inner_text().split(" ", 1)
        hits = {h.where: h for h in KnowledgeBase("widget", rag_server.kb_dir).search(QUESTION, k=10)}
        assert n.startswith("[") and where in hits, (summary.inner_text(), list(hits))
        text = page.locator(".msg.assistant .sources .source-text").first
        assert not text.is_visible()
        summary.click()
        assert text.inner_text().strip() == hits[where].text.strip() and text.is_visible()
        cites = page.locator(".msg.assistant .body a.cite")
        if cites.count():  # the answer's [n] markers open their source
            page.locator(".msg.assistant .sources details").first.evaluate("d => d.open = false")
            cites.first.click()
            assert page.locator(".msg.assistant .sources details[open]").count() == 1
        browser.close()
        assert not errors, errors


def test_access_file_errors(tmp_path: Path) -> None:
    from llmworks.serve.rag import access_keys

    bad = tmp_path / "a.yaml"
    bad.write_text("keys:\n  k1: [nosuch]\n")
    with pytest.raises(UserError, match="unknown nosuch"):
        access_keys(bad, ["m"], {})
    bad.write_text(json.dumps({"nokeys": 1}))
    with pytest.raises(UserError, match="no `keys:`"):
        access_keys(bad, ["m"], {})


@pytest.mark.slow
def test_an_embedder_served_over_http(
    rag_server: RagServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--embedder URL#MODEL: the knowledge base embeds through /v1/embeddings of a server."""
    from llmworks.rag.kb import KnowledgeBase

    monkeypatch.setenv("LLMWORKS_API_KEY", "master")
    spec = f"{rag_server.base}/v1#all-minilm-l6-v2"
    kb = KnowledgeBase("remote", tmp_path / "kbs", embedder=spec)
    kb.ingest([rag_server.docs / "faq.jsonl", rag_server.docs / "guide.md"])
    assert kb.meta.embedder == spec and kb.meta.dim == 384
    assert kb.search("how long is the warranty", k=1)[0].source.endswith("faq.jsonl")
    with pytest.raises(UserError, match="built with embedder"):
        KnowledgeBase("remote", tmp_path / "kbs", embedder="all-minilm-l6-v2").search("x")
