"""Needle in a haystack: where the needle lands, the token budget, scoring and the heatmap."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from llmworks.errors import UserError
from llmworks.eval.niah import build_case, grid, heatmap_svg, load_haystack, score_answer

NEEDLE = "The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day."
QUESTION = "What is the best thing to do in San Francisco?"


def words(text: str) -> int:
    return len(text.split())


@pytest.fixture(scope="module")
def essays() -> str:
    return load_haystack()


def context_of(prompt: str) -> str:
    assert prompt.endswith("\n\n" + QUESTION)
    return prompt[: -len(QUESTION) - 2]


def test_essays_load(essays: str) -> None:
    assert len(essays) > 500_000
    assert essays.count(".") > 5_000


def test_user_haystack(tmp_path: Path) -> None:
    f = tmp_path / "hay.txt"
    f.write_text("Grass is green. Sky is blue.", encoding="utf-8")
    assert load_haystack(str(f)) == "Grass is green. Sky is blue."
    with pytest.raises(UserError, match="does not exist"):
        load_haystack(str(tmp_path / "nope.txt"))


@pytest.mark.parametrize("depth", [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
def test_needle_depth_and_budget(essays: str, depth: float) -> None:
    context = context_of(build_case(words, essays, 2000, depth, NEEDLE, QUESTION))
    assert 1950 <= words(context) <= 2000
    ratio = context.index(NEEDLE) / (len(context) - len(NEEDLE))
    assert depth - 0.05 <= ratio <= depth + 1e-9  # backed up to the previous sentence end, never forward
    if depth == 0.0:
        assert context.startswith(NEEDLE)
    elif depth == 1.0:
        assert context.endswith(NEEDLE)
    else:  # at a sentence boundary
        assert context[: context.index(NEEDLE)].rstrip()[-1] in ".!?\"')]"


def test_short_haystack_is_repeated() -> None:
    context = context_of(build_case(words, "One two three. Four five six.", 300, 0.5, NEEDLE, QUESTION))
    assert 290 <= words(context) <= 300
    assert context.count(NEEDLE) == 1


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="depth"):
        build_case(words, "Hay.", 100, 1.5, NEEDLE, QUESTION)
    with pytest.raises(ValueError, match="no room"):
        build_case(words, "Hay.", 10, 0.5, NEEDLE, QUESTION)


def test_real_tokenizer_budget_and_depth(tiny_tokenizer_dir: Path, essays: str) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)

    def count(text: str) -> int:
        return len(tok.encode(text, add_special_tokens=False))

    for depth in (0.3, 1.0):
        context = context_of(build_case(count, essays, 1000, depth, NEEDLE, QUESTION))
        assert 980 <= count(context) <= 1000
        assert depth - 0.06 <= context.index(NEEDLE) / (len(context) - len(NEEDLE)) <= depth + 1e-9


def test_grid() -> None:
    assert grid([1000, 2000], [0.0, 1.0]) == [(1000, 0.0), (1000, 1.0), (2000, 0.0), (2000, 1.0)]
    with pytest.raises(ValueError):
        grid([1000], [1.5])


@pytest.mark.parametrize(
    ("answer", "score"),
    [
        ("Eat a sandwich and sit in Dolores Park on a sunny day.", 1.0),
        ("The best thing is to EAT A SANDWICH while you SIT in DOLORES PARK on a SUNNY DAY!", 1.0),
        ("Sit in Dolores Park.", 3 / 7),
        ("I don't know.", 0.0),
        ("", 0.0),
    ],
)
def test_score_answer(answer: str, score: float) -> None:
    expected = "eat a sandwich and sit in Dolores Park on a sunny day"  # key words: 7
    assert score_answer(answer, expected) == pytest.approx(score)


def test_score_answer_cjk_and_stopword_only() -> None:
    assert score_answer("答案是吃三明治", "吃三明治") == 1.0
    assert score_answer("吃饭", "吃三明治") == 0.25
    assert score_answer("it is", "It is.") == 1.0  # nothing but function words: all words are keys


def test_heatmap_svg_is_valid_xml() -> None:
    results = [
        {"context_len": n, "depth": d, "score": s}
        for (n, d), s in zip(
            grid([1000, 2000, 4000], [0.0, 0.5, 1.0]), [1, 1, 0.5, 1, 0, 0, 1, 0.25, 1], strict=True
        )
    ]
    results.append({"context_len": 1000, "depth": 0.0, "score": 0.0})  # a repeat: averaged
    root = ET.fromstring(heatmap_svg(results))
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    cells = [r for r in root.iter(f"{ns}rect") if r.get("stroke")]
    assert len(cells) == 9
    texts = [t.text for t in root.iter(f"{ns}text")]
    for label in (
        "1000",
        "4000",
        "0%",
        "50%",
        "100%",
        "0.50",
        "0.25",
        "Context length (tokens)",
        "Needle depth",
    ):
        assert label in texts
    fills = {c.get("fill") for c in cells}
    assert {"#d73027", "#1a9850"} <= fills  # red for 0, green for 1
    with pytest.raises(ValueError):
        heatmap_svg([])
