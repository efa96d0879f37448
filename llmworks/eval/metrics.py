"""Rule metrics for generated answers, and answer extraction (GSM8K numbers, multiple-choice letters)."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable

# GSM8K, exactly as lm-evaluation-harness's gsm8k task: "strict-match" takes the first "#### n",
# "flexible-extract" the last number-like run; both are compared after its regexes_to_ignore.
STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
_IGNORE = [re.compile(p) for p in (",", r"\$", r"(?s).*#### ", r"\.$")]
INVALID = "[invalid]"


def extract_strict(text: str) -> str:
    m = STRICT.findall(text)
    return m[0].strip() if m else INVALID


def extract_flexible(text: str) -> str:
    matches = FLEXIBLE.findall(text)
    if not matches:
        return INVALID
    found = [g for g in matches[-1] if g]
    return found[0].strip() if found else INVALID


def math_equal(extracted: str, target: str) -> bool:
    """lm-eval's exact_match for gsm8k: case-folded, after removing commas, "$", "... #### " and a final "."."""

    def norm(s: str) -> str:
        for p in _IGNORE:
            s = p.sub("", s)
        return s.strip().lower()

    return extracted != INVALID and norm(extracted) == norm(target)


def extract_choice(text: str, labels: list[str]) -> str | None:
    """The option a generated answer picks: "answer is (B)", "B.", "Answer: B", or a label word, first wins."""
    alts = "|".join(re.escape(label) for label in sorted(labels, key=len, reverse=True))
    for pattern in (
        rf"(?:answer|答案)\s*(?:is|是|为|:|：)?\s*[\(\[]?({alts})\b",
        rf"^\s*[\(\[]?({alts})(?:[\)\].:：,\s]|$)",
        rf"\b({alts})\b",
    ):
        m = re.search(pattern, text, re.I | re.M)
        if m:
            return next(label for label in labels if label.lower() == m.group(1).lower())
    return None


# -- rule metrics for custom tasks: (prediction, target, options) -> score in [0, 1] --


def _normalize(s: str) -> str:
    """SQuAD-style: case-folded, punctuation and English articles removed, whitespace collapsed."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def _tokens(s: str) -> list[str]:
    # CJK characters count as words, so token F1 works on Chinese as on English
    return re.findall(r"[\u3400-\u9fff]|[^\W_]+", _normalize(s))


def exact_match(pred: str, target: str, opts: dict) -> float:
    return float(_normalize(pred) == _normalize(target))


def contains(pred: str, target: str, opts: dict) -> float:
    return float(_normalize(target) in _normalize(pred))


def regex(pred: str, target: str, opts: dict) -> float:
    return float(re.search(opts["regex"], pred) is not None)


def token_f1(pred: str, target: str, opts: dict) -> float:
    p, t = _tokens(pred), _tokens(target)
    common = sum((Counter(p) & Counter(t)).values())
    if not p or not t or not common:
        return float(p == t)
    precision, recall = common / len(p), common / len(t)
    return 2 * precision * recall / (precision + recall)


def rouge_l(pred: str, target: str, opts: dict) -> float:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"]).score(target, pred)["rougeL"].fmeasure


def bleu(pred: str, target: str, opts: dict) -> float:
    """sacreBLEU sentence BLEU on a 0-1 scale (its default 13a tokenizer)."""
    import sacrebleu

    return sacrebleu.sentence_bleu(pred, [target]).score / 100


RULES: dict[str, Callable[[str, str, dict], float]] = {
    "exact_match": exact_match,
    "contains": contains,
    "regex": regex,
    "f1": token_f1,
    "rouge_l": rouge_l,
    "bleu": bleu,
}
