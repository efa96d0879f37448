"""Structure-aware chunking with the real embedder tokenizer (all-MiniLM-L6-v2's)."""

from __future__ import annotations

import itertools

import pytest

from llmworks.rag.chunk import chunk_record
from llmworks.rag.tokens import token_counter

from .conftest import GUIDE


@pytest.fixture(scope="module")
def counter():
    return token_counter(None)


def md(text: str) -> dict:
    return {"text": text, "source": "/d/guide.md", "page": None, "format": "markdown"}


def test_headings_are_boundaries_and_paths(counter) -> None:
    chunks = chunk_record(md(GUIDE), counter, size=200, overlap=32)
    headings = [c.heading for c in chunks]
    assert headings == [
        "Widget Guide",
        "Widget Guide > Installing",
        "Widget Guide > Ports",
        "Widget Guide > Calibration",
    ]
    for c in chunks:  # offsets point at the text the chunk covers
        assert GUIDE[c.start : c.end] == c.text
    assert chunks[1].index_text.startswith("Widget Guide > Installing\n")
    assert len({c.hash for c in chunks}) == len(chunks)


def test_size_and_overlap_in_embedder_tokens(counter) -> None:
    body = " ".join(f"Sentence number {i} talks about sensor {i % 7} readings." for i in range(60))
    chunks = chunk_record(md(f"# Long\n\n{body}\n"), counter, size=64, overlap=16)
    assert len(chunks) > 5
    assert all(counter.count(c.index_text) <= 64 + 1 for c in chunks)
    for a, b in itertools.pairwise(chunks):
        assert b.start < a.end  # overlapping neighbours
        assert counter.count(body[b.start - len("# Long\n\n") : a.end - len("# Long\n\n")]) <= 16 + 2


def test_a_table_stays_whole_with_its_header(counter) -> None:
    chunks = chunk_record(md(GUIDE), counter, size=200, overlap=32)
    ports = next(c for c in chunks if "8080" in c.text)
    assert "| Port | Service |" in ports.text and "9090" in ports.text


def test_a_split_table_repeats_its_header(counter) -> None:
    rows = "\n".join(f"| host-{i} | 10.0.0.{i} | rack {i % 4} |" for i in range(80))
    text = f"# Hosts\n\n| Name | Address | Rack |\n|---|---|---|\n{rows}\n"
    chunks = chunk_record(md(text), counter, size=100, overlap=20)
    assert len(chunks) > 2 and all(c.kind == "table" for c in chunks)
    for c in chunks:
        assert c.text.startswith("| Name | Address | Rack |\n|---|---|---|\n")
        assert counter.count(c.index_text) <= 101
    found = [line for c in chunks for line in c.text.splitlines()[2:]]
    assert found == rows.splitlines()  # every row once, none lost, none repeated


def test_pages_stay_apart_and_keep_their_numbers(counter) -> None:
    pages = [
        {"text": "Chapter one text.", "source": "/d/m.pdf", "page": 1, "format": "pdf", "heading": "1 Intro"},
        {"text": "Chapter two text.", "source": "/d/m.pdf", "page": 2, "format": "pdf", "heading": "2 Use"},
    ]
    chunks = [c for p in pages for c in chunk_record(p, counter)]
    assert [(c.page, c.heading, c.text) for c in chunks] == [
        (1, "1 Intro", "Chapter one text."),
        (2, "2 Use", "Chapter two text."),
    ]


def test_code_blocks_are_not_headings_and_qa_rows_stay_whole(counter) -> None:
    text = "# Setup\n\n```\n# comment, not a heading\nrun it\n```\n\nDone.\n"
    chunks = chunk_record(md(text), counter)
    assert [c.heading for c in chunks] == ["Setup"] and "# comment" in chunks[0].text
    qa = {"text": "Q: Which port?\nA: 8080.", "source": "/d/faq.jsonl", "format": "qa", "row": 3}
    (c,) = chunk_record(qa, counter)
    assert c.kind == "qa" and c.row == 3 and c.text == qa["text"]


def test_chinese_text_is_cut_at_sentence_ends(counter) -> None:
    text = "# 说明\n\n" + "".join(f"第{i}句说明了网络接口的配置方法。" for i in range(40))
    chunks = chunk_record(md(text), counter, size=48, overlap=0)
    assert len(chunks) > 1 and all(c.text.endswith("。") for c in chunks)
