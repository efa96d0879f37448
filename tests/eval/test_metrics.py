"""Answer extraction and rule metrics; GSM8K extraction checked against lm-evaluation-harness's own filter."""

from __future__ import annotations

import pytest

from llmworks.eval import metrics as M

# Tricky model outputs, with what lm-eval's gsm8k "strict-match" and "flexible-extract" filters return.
GSM8K_CASES = [
    ("So the answer is 42.\n#### 42", "42", "42"),
    ("#### 1,234", "1,234", "1,234"),
    ("#### -5", "-5", "-5"),
    ("It costs $18.50 in total.", "[invalid]", "$18.50"),
    ("First 3 + 4 = 7, then 7 * 2 = 14", "[invalid]", "14"),
    ("#### 12 apples, but wait, it is 13", "12", "13"),
    ("The answer is 3.", "[invalid]", "3."),
    ("No number here.", "[invalid]", "[invalid]"),
    ("#### 7\n#### 8", "7", "8"),
    ("Answer: -0.5 liters", "[invalid]", "-0.5"),
    ("####42", "[invalid]", "42"),
    ("9", "[invalid]", "9"),
]


@pytest.mark.parametrize(("text", "strict", "flexible"), GSM8K_CASES)
def test_gsm8k_extraction_matches_lm_eval(text: str, strict: str, flexible: str) -> None:
    from lm_eval.filters.extraction import RegexFilter

    lm_strict = RegexFilter(r"#### (\-?[0-9\.\,]+)").apply([[text]], [{}])[0][0]
    lm_flexible = RegexFilter(r"(-?[$0-9.,]{2,})|(-?[0-9]+)", group_select=-1).apply([[text]], [{}])[0][0]
    assert (lm_strict, lm_flexible) == (strict, flexible)  # the expected values are lm-eval's behaviour
    assert M.extract_strict(text) == strict
    assert M.extract_flexible(text) == flexible


def test_math_equal_ignores_what_lm_eval_ignores() -> None:
    assert M.math_equal("1,234", "1234")
    assert M.math_equal("$18", "18")
    assert M.math_equal("3.", "3")
    assert not M.math_equal("[invalid]", "3")
    assert not M.math_equal("14", "41")


def test_extract_choice() -> None:
    labels = ["A", "B", "C", "D"]
    assert M.extract_choice("The answer is (C).", labels) == "C"
    assert M.extract_choice("B. Paris", labels) == "B"
    assert M.extract_choice("答案：D", labels) == "D"
    assert M.extract_choice("I think it's A", labels) == "A"
    assert M.extract_choice("no idea", labels) is None
    assert M.extract_choice("This is negative.", ["positive", "negative"]) == "negative"


def test_rule_metrics() -> None:
    assert M.exact_match("The Paris.", "paris", {}) == 1.0
    assert M.contains("It is Paris, France", "Paris", {}) == 1.0
    assert M.regex("call 555-1234", "", {"regex": r"\d{3}-\d{4}"}) == 1.0
    assert M.token_f1("the cat sat", "a cat sat down", {}) == pytest.approx(0.8)
    assert M.token_f1("北京是首都", "北京", {}) == pytest.approx(2 * (2 / 5) * 1 / (2 / 5 + 1))
    assert M.rouge_l("the cat sat on the mat", "the cat sat on the mat", {}) == 1.0
    assert M.bleu("the cat sat on the mat", "the cat sat on the mat", {}) == pytest.approx(1.0)
    assert M.bleu("completely different words", "the cat sat on the mat", {}) < 0.1
