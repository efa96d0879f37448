"""A model as judge: MT-Bench single-answer grading, pairwise comparison in both orders, and ratings.

The judge is any function from chat messages to reply text (`JudgeFn`), so a served model, an API, or
a test script can stand in. Prompts follow FastChat's MT-Bench judge prompts ("single-v1",
"single-math-v1" with a reference, "pair-v2"). Ratings from pairwise outcomes come as Bradley–Terry
maximum likelihood or online Elo, both on the Elo scale (400·log10 odds, mean 1000), with bootstrap
95% intervals.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from typing import Literal

import numpy as np

from llmworks.client import Client, make_client
from llmworks.eval.rundir import Cache
from llmworks.eval.tasks.base import Request

JudgeFn = Callable[[list[dict]], str]
Verdict = Literal["A", "B", "tie"]

DEFAULT_RUBRIC = (
    "Your evaluation should consider factors such as the helpfulness, relevance, accuracy, depth, creativity, "
    "and level of detail of the response."
)
REFERENCE_RUBRIC = "Your evaluation should consider correctness and helpfulness."
_SYSTEM = "You are a helpful assistant."
_RATE = (
    "Be as objective as possible. After providing your explanation, you must rate the response on a scale of "
    '1 to 10 by strictly following this format: "[[rating]]", for example: "Rating: [[5]]".'
)
_PAIR_SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants "
    "to the user question displayed below. You should choose the assistant that follows the user's instructions "
    "and answers the user's question better. Your evaluation should consider factors such as the helpfulness, "
    "relevance, accuracy, depth, creativity, and level of detail of their responses. Begin your evaluation by "
    "comparing the two responses and provide a short explanation. Avoid any position biases and ensure that the "
    "order in which the responses were presented does not influence your decision. Do not allow the length of "
    "the responses to influence your evaluation. Do not favor certain names of the assistants. Be as objective "
    "as possible. After providing your explanation, output your final verdict by strictly following this "
    'format: "[[A]]" if assistant A is better, "[[B]]" if assistant B is better, and "[[C]]" for a tie.'
)

_NUM = r"(?<![\d.])(\d+(?:\.\d+)?)(?![\d])"
_OUT_OF_10 = r"(?:\s*/\s*10(?![\d])|\s*out\s+of\s+10(?![\d])|\s*分)?"
# Score patterns by trust; the first tier that matches decides, and it must agree with itself.
_SCORE_TIERS = [
    [re.compile(r"\[\[\s*" + _NUM + r"\s*(?:/\s*10\s*)?\]\]")],
    [
        re.compile(
            r"(?:\b(?:rating|score|grade)s?|评分|得分|分数|打分)[^\w\n]{0,6}(?:is\s+|of\s+|为|是)?" + _NUM,
            re.I,
        ),
        re.compile(_NUM + r"\s*/\s*10(?![\d])"),
        re.compile(_NUM + r"\s+out\s+of\s+10(?![\d])", re.I),
        re.compile(r"(?<!满)(?<!满分)(?<!总分)" + _NUM + r"\s*分"),
        re.compile(
            r"\b(?:give|rate|award)s?\s+(?:it|this|the\s+(?:response|answer))\s+(?:an?\s+)?" + _NUM, re.I
        ),
    ],
    [re.compile(r"\*\*\s*" + _NUM + _OUT_OF_10 + r"\s*\*\*")],
]
_VERDICT = re.compile(r"\[\[\s*(A|B|C|tie)\s*\]\]", re.I)
_VERDICT_WORDS = re.compile(r"final\s+verdict\W{0,6}(?:is\W{0,3})?(?:assistant\s+)?(A|B|C|tie)\b", re.I)


def parse_score(text: str) -> int | None:
    """A 1–10 rating from a judge's reply, or None when there is none, it is out of range, or it is
    ambiguous. Tried in order, the first kind found decides: "[[7]]"; then labelled or scaled numbers
    ("Score: 8", "Rating is 7", "7/10", "6 out of 10", "give it a 6", "评分：7分", "8分" but not "满分10分");
    then a bold number ("**9**"). Differing numbers of the deciding kind are ambiguous; a decimal is
    rounded half up; full-width digits are accepted."""
    text = unicodedata.normalize("NFKC", text)
    for tier in _SCORE_TIERS:
        found = {int(float(m) + 0.5) for pattern in tier for m in pattern.findall(text)}
        if found:
            score = found.pop()
            return score if not found and 1 <= score <= 10 else None
    return None


def grade(
    judge: JudgeFn, question: str, answer: str, rubric: str | None = None, reference: str | None = None
) -> dict:
    """Rate one answer 1–10 (MT-Bench single-answer grading, with a reference answer when given)."""
    instruction = (
        "Please act as an impartial judge and evaluate the quality of the response provided by an AI assistant "
        "to the user question displayed below. "
    )
    if reference is None:
        instruction += (
            f"{rubric or DEFAULT_RUBRIC} Begin your evaluation by providing a short explanation. {_RATE}"
        )
        body = f"[Question]\n{question}\n\n[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]"
    else:
        instruction += (
            f"{rubric or REFERENCE_RUBRIC} You will be given a reference answer and the assistant's answer. Begin "
            "your evaluation by comparing the assistant's answer with the reference answer. Identify and correct "
            f"any mistakes. {_RATE}"
        )
        body = (
            f"[Question]\n{question}\n\n[The Start of Reference Answer]\n{reference}\n[The End of Reference Answer]"
            f"\n\n[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]"
        )
    prompt = [
        {"role": "system", "content": _SYSTEM},
        {"role": "user", "content": f"[Instruction]\n{instruction}\n\n{body}"},
    ]
    raw = judge(prompt)
    return {"score": parse_score(raw), "raw": raw, "prompt": prompt}


def pairwise(judge: JudgeFn, question: str, answer_a: str, answer_b: str) -> dict:
    """Compare two answers, asking the judge in both orders (A first, then swapped) to cancel position
    bias. `verdicts` are per order, already mapped back to the caller's A/B (None: unparsed); the winner
    is the verdict both orders agree on, otherwise (disagreement or an unparsed reply) a tie."""
    raw = [
        judge(_pair_prompt(question, answer_a, answer_b)),
        judge(_pair_prompt(question, answer_b, answer_a)),
    ]
    first, swapped = (_parse_verdict(r) for r in raw)
    verdicts = [first, {"A": "B", "B": "A"}.get(swapped, swapped) if swapped else None]
    winner = verdicts[0] if verdicts[0] is not None and verdicts[0] == verdicts[1] else "tie"
    return {"winner": winner, "verdicts": verdicts, "raw": raw, "unparsed": verdicts.count(None)}


def bradley_terry(
    outcomes: list[tuple[str, str, float]], n_bootstrap: int = 200, seed: int = 0
) -> dict[str, dict]:
    """Bradley–Terry strengths by maximum likelihood (Hunter's MM algorithm; a tie is half a win each),
    as Elo-scale ratings with mean 1000 and bootstrap percentile 95% intervals.

    A model that never lost (or never won) has no finite MLE, so the fit adds a weak prior: one virtual
    tie per model, spread evenly over all its possible opponents; negligible with many games.
    """
    names, a, b, s = _games(outcomes, n_bootstrap)
    if not names:
        return {}
    fit = _bt_ratings(a, b, s, len(names))
    rng = np.random.default_rng(seed)
    boot = np.array([_bt_ratings(a[i], b[i], s[i], len(names)) for i in _resamples(rng, len(s), n_bootstrap)])
    return _report(names, fit, boot, a, b)


def elo(
    outcomes: list[tuple[str, str, float]], k: float = 32, n_bootstrap: int = 200, seed: int = 0
) -> dict[str, dict]:
    """Online Elo (start 1000, step k) over bootstrap resamples of the games in random order: the rating is
    the mean over resamples, the interval their 2.5–97.5 percentiles. Elo depends on game order; this
    averages that away, as Chatbot Arena did."""
    names, a, b, s = _games(outcomes, n_bootstrap)
    if not names:
        return {}
    rng = np.random.default_rng(seed)
    boot = np.array(
        [_elo_ratings(a[i], b[i], s[i], len(names), k) for i in _resamples(rng, len(s), n_bootstrap)]
    )
    with np.errstate(all="ignore"):
        mean = np.nanmean(boot, axis=0)
    return _report(names, mean, boot, a, b)


def _pair_prompt(question: str, first: str, second: str) -> list[dict]:
    user = (
        f"[User Question]\n{question}\n\n[The Start of Assistant A's Answer]\n{first}\n[The End of Assistant A's "
        f"Answer]\n\n[The Start of Assistant B's Answer]\n{second}\n[The End of Assistant B's Answer]"
    )
    return [{"role": "system", "content": _PAIR_SYSTEM}, {"role": "user", "content": user}]


def _parse_verdict(text: str) -> Verdict | None:
    """The last "[[A]]"/"[[B]]"/"[[C]]" (judges restate the format before their final verdict), else a
    spelled-out "Final verdict: A"; C and "tie" are ties."""
    found = _VERDICT.findall(text) or _VERDICT_WORDS.findall(text)
    if not found:
        return None
    last = found[-1].upper()
    return "tie" if last in ("C", "TIE") else last  # type: ignore[return-value]


def _games(
    outcomes: list[tuple[str, str, float]], n_bootstrap: int
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be at least 1, got {n_bootstrap}")
    for model_a, model_b, score in outcomes:
        if model_a == model_b or score not in (0, 0.5, 1):
            raise ValueError(
                f"bad outcome {(model_a, model_b, score)}: two different models and a score of 1, 0.5 or 0"
            )
    names = sorted({m for o in outcomes for m in o[:2]})
    index = {m: i for i, m in enumerate(names)}
    a = np.array([index[o[0]] for o in outcomes], dtype=int)
    b = np.array([index[o[1]] for o in outcomes], dtype=int)
    return names, a, b, np.array([o[2] for o in outcomes], dtype=float)


def _resamples(rng: np.random.Generator, n: int, times: int) -> list[np.ndarray]:
    return [rng.integers(0, n, n) for _ in range(times)]


def _bt_ratings(a: np.ndarray, b: np.ndarray, s: np.ndarray, m: int, tol: float = 1e-9) -> np.ndarray:
    # Real games plus the prior: a virtual tie of weight 1/(m-1) between every pair (one game per model).
    games = np.zeros((m, m))
    np.add.at(games, (a, b), 1)
    games += games.T + (1 - np.eye(m)) / (m - 1)
    wins = np.bincount(a, s, m) + np.bincount(b, 1 - s, m) + 0.5
    p = np.ones(m)
    for _ in range(10_000):
        # MM update p_i = W_i / sum_j n_ij / (p_i + p_j); the likelihood ignores a common factor, so fix
        # the geometric mean at 1 (MM would otherwise drift slowly along that flat direction).
        new = wins / (games / (p[:, None] + p[None, :])).sum(1)
        new /= np.exp(np.log(new).mean())
        done = np.max(np.abs(np.log(new / p))) < tol
        p = new
        if done:
            break
    return _centred(400 * np.log10(p), a, b, m)


def _elo_ratings(a: np.ndarray, b: np.ndarray, s: np.ndarray, m: int, k: float) -> np.ndarray:
    r = [1000.0] * m  # a Python list: this loop is scalar, and numpy scalars are slower
    for i, j, score in zip(a.tolist(), b.tolist(), s.tolist(), strict=True):
        delta = k * (score - 1 / (1 + 10 ** ((r[j] - r[i]) / 400)))
        r[i] += delta
        r[j] -= delta
    return _centred(np.array(r), a, b, m)


def _centred(ratings: np.ndarray, a: np.ndarray, b: np.ndarray, m: int) -> np.ndarray:
    """Ratings of the models that played (NaN for any a resample left out), shifted to mean 1000."""
    played = np.bincount(np.concatenate([a, b]), minlength=m) > 0
    out = np.where(played, ratings, np.nan)
    return out - np.nanmean(out) + 1000


def _report(
    names: list[str], ratings: np.ndarray, boot: np.ndarray, a: np.ndarray, b: np.ndarray
) -> dict[str, dict]:
    with np.errstate(all="ignore"):
        low, high = np.nanpercentile(boot, [2.5, 97.5], axis=0)
    games = Counter(a.tolist()) + Counter(b.tolist())
    return {
        name: {
            "rating": float(ratings[i]),
            "ci_low": float(low[i]),
            "ci_high": float(high[i]),
            "games": games[i],
        }
        for i, name in enumerate(names)
    }


__all__ = ["DEFAULT_RUBRIC", "JudgeFn", "bradley_terry", "elo", "grade", "pairwise", "parse_score"]


def cached_judge(
    ask: Callable[[list[dict]], str], name: str, cache: Cache, max_tokens: int = 512
) -> Callable[[list[dict]], str]:
    """`ask` with its replies kept in the run's cache, keyed by the judge's name and the messages."""

    def call(messages: list[dict]) -> str:
        key = Request.chat(messages, max_tokens=max_tokens).key("judge:" + name)
        if key not in cache:
            cache.put(key, ask(messages))
        return cache.get(key)  # type: ignore[no-any-return]

    return call


def chat_text(client: Client, max_tokens: int) -> Callable[[list[dict]], str]:
    """messages -> the reply's text (what a judge call returns)."""
    return lambda messages: client.chat(messages, max_tokens=max_tokens).content or ""


def make_judge(spec: str, retries: int, api_key: str | None = None) -> Client:
    """The judge: a URL is an OpenAI-compatible server (its first model), anything else a local model."""
    if re.match(r"https?://", spec):
        return make_client(None, spec, api_key, retries=retries)
    return make_client(spec, None)
