"""Answers: citations kept, dropped and attributed while streaming; refusal; follow-up rewriting. The model is
a ScriptedClient (the embedded model's answers are checked end to end in test_cli.py and tests/serve)."""

from __future__ import annotations

import pytest

from llmworks.rag.answer import CitationFilter, Source, rewrite
from llmworks.rag.kb import KnowledgeBase
from llmworks.rag.retrieve import Hit
from llmworks.testing.fake_client import ScriptedClient


def sources() -> list[Source]:
    return [
        Source(
            1, Hit("Use asn1_der_decoding to decode DER data into a structure.", "/d/a.pdf", 3, "DER", 1.0)
        ),
        Source(2, Hit("APT installs packages with apt install.", "/d/b.html", None, "APT", 1.0)),
    ]


def stream(f: CitationFilter, text: str, step: int = 3) -> str:
    return "".join(f.feed(text[i : i + step]) for i in range(0, len(text), step)) + f.finish()


def test_citations_are_kept_dropped_and_attributed() -> None:
    src = sources()
    f = CitationFilter(src)
    out = stream(f, "Decode DER with asn1_der_decoding [1]. Install packages with apt install [9]. "
                    "The moon is made of green cheese.")  # fmt: skip
    assert out == (
        "Decode DER with asn1_der_decoding [1]. Install packages with apt install [2]. "
        "The moon is made of green cheese."
    )
    assert (f.dropped, f.attributed, f.unsupported, f.sentences) == (1, 1, 1, 3)
    assert [s.cited for s in src] == [True, True] and src[1].attributed and not src[0].attributed


def test_citation_forms_and_a_cut_off_marker() -> None:
    f = CitationFilter(sources())
    assert stream(f, "See the DER decoding functions [Source 1, 2]. Done [1") == (
        "See the DER decoding functions [1][2]. Done"
    )


def test_a_model_that_repeats_itself_is_stopped() -> None:
    f = CitationFilter(sources())
    out = stream(f, "Use apt install to install packages. " * 5)
    assert out.count("Use apt install") == 1 and f.looping
    f = CitationFilter(sources())
    assert stream(f, 'The host is "c:d:c:c:c:c:c:c:c:c:c:c:c:c"').startswith('The host is "c:d:c')
    assert f.looping


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    from .conftest import write_corpus

    root = tmp_path_factory.mktemp("answer")
    base = KnowledgeBase("widget", root / "kbs")
    base.ingest([write_corpus(root / "docs")])
    return base


@pytest.mark.slow
def test_ask_grounds_refuses_and_rewrites(kb: KnowledgeBase) -> None:
    model = ScriptedClient(
        ["The warranty lasts two years from the date of purchase.\n\nExtra rambling paragraph."]
    )
    a = kb.ask("How long is the warranty?", client=model, k=3)
    assert (
        a.text == "The warranty lasts two years from the date of purchase [1]."
    )  # attributed, one paragraph
    assert not a.refused and a.cited[0].hit.source.endswith("faq.jsonl") and a.attributed == 1
    system, user = model.calls[0][0]
    assert "numbered sources" in system["content"] and user["content"].startswith("Sources:\n\n[1] ")
    assert "Question: How long is the warranty?" in user["content"]
    assert "[1] faq.jsonl row 1" in a.references()

    silent = ScriptedClient(["should not be asked"])
    r = kb.ask("What is the capital of France?", client=silent)
    assert r.refused and r.text == "I can't answer that from the knowledge base." and not silent.calls
    custom = kb.ask("What is the capital of France?", client=silent, refusal="Out of scope.")
    assert custom.text == "Out of scope." and custom.p_out_of_scope > 0.5
    answered = kb.ask("What is the capital of France?", client=ScriptedClient(["Paris."]), refuse=False)
    assert answered.text.startswith("Paris") and answered.unsupported == 0  # too short to judge

    history = [
        {"role": "user", "content": "How do I calibrate the humidity sensor?"},
        {"role": "assistant", "content": "Run widget calibrate --humidity."},
    ]
    writer = ScriptedClient(["How often should the humidity sensor be calibrated?"])
    assert (
        rewrite("How often?", history, "llm", lambda: writer)
        == "How often should the humidity sensor be calibrated?"
    )
    assert "Conversation:\nUser: How do I calibrate" in writer.calls[0][0][0]["content"]
    rambler = ScriptedClient(["I am a helpful assistant who loves cooking pasta dishes every evening."])
    joined = rewrite("How often?", history, "llm", lambda: rambler)  # no shared words: the safer query
    assert joined == "How do I calibrate the humidity sensor? How often?"
    follow = kb.ask("How often?", history, client=ScriptedClient(["Every six months [1]."]), rewrite="concat")
    assert follow.query == joined and "six months" in follow.sources[0].hit.text
