"""Model as judge: score parsing, prompts, both-order pairwise comparison, and ratings."""

from __future__ import annotations

import numpy as np
import pytest

from llmworks.eval.judge import DEFAULT_RUBRIC, bradley_terry, elo, grade, pairwise, parse_score


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("The answer is accurate and complete.\n\nRating: [[7]]", 7),
        ("Rating: [[ 10 ]]", 10),
        ("Rating: [[7.5]]", 8),
        ("Overall 7/10.", 7),
        ("Score: 8", 8),
        ("**Score:** 8/10", 8),
        ("Final score is 9", 9),
        ("**9**", 9),
        ("I'd give it a 6 out of 10.", 6),
        ("评分：7分", 7),
        ("总体不错，8分（满分10分）。", 8),
        ("评分：７", 7),  # full-width digit
        ("It lists 3 steps and cites 2 sources. Rating: [[4]]", 4),
        ("The response gives 3 examples. Score: 8", 8),
        ("Compared with a 10/10 answer it has one flaw... Rating: [[9]]", 9),
        # None: nothing, out of range, or ambiguous
        ("I cannot rate this response.", None),
        ("The answer has 3 parts.", None),
        ("Rating: [[11]]", None),
        ("Score: 0", None),
        ("Rating: [[N/A]]", None),
        ("Either 6/10 or 8/10, depending on the reading.", None),
        ("Rating: [[6]] ... on reflection, Rating: [[8]]", None),
        ("", None),
    ],
)
def test_parse_score(reply: str, score: int | None) -> None:
    assert parse_score(reply) == score


def test_grade_builds_mt_bench_prompts() -> None:
    seen: list[list[dict]] = []

    def judge(messages: list[dict]) -> str:
        seen.append(messages)
        return "Fine. Rating: [[8]]"

    out = grade(judge, "What is 2+2?", "4")
    assert out == {"score": 8, "raw": "Fine. Rating: [[8]]", "prompt": seen[0]}
    user = seen[0][-1]["content"]
    assert DEFAULT_RUBRIC in user and '"[[rating]]"' in user
    assert "[Question]\nWhat is 2+2?" in user and "[The Start of Assistant's Answer]\n4\n" in user

    grade(judge, "What is 2+2?", "5", rubric="Judge arithmetic only.", reference="4")
    user = seen[1][-1]["content"]
    assert "Judge arithmetic only." in user and DEFAULT_RUBRIC not in user
    assert "[The Start of Reference Answer]\n4\n[The End of Reference Answer]" in user


def _shown(messages: list[dict]) -> tuple[str, str]:
    """The two answers as the judge sees them: (assistant A's, assistant B's)."""
    user = messages[-1]["content"]
    a = user.split("[The Start of Assistant A's Answer]\n")[1].split("\n[The End")[0]
    b = user.split("[The Start of Assistant B's Answer]\n")[1].split("\n[The End")[0]
    return a, b


def test_pairwise_asks_both_orders_and_cancels_position_bias() -> None:
    calls: list[tuple[str, str]] = []

    def first_is_better(messages: list[dict]) -> str:  # a judge with pure position bias
        calls.append(_shown(messages))
        return "Assistant A is more detailed. [[A]]"

    out = pairwise(first_is_better, "Q?", "answer one", "answer two")
    assert calls == [("answer one", "answer two"), ("answer two", "answer one")]
    assert out["winner"] == "tie" and out["verdicts"] == ["A", "B"] and out["unparsed"] == 0
    assert len(out["raw"]) == 2


def test_pairwise_consistent_judge_wins() -> None:
    def prefers_correct(messages: list[dict]) -> str:
        a, _ = _shown(messages)
        # Restates the format first: the last verdict counts.
        return 'Format: "[[A]]", "[[B]]" or "[[C]]". Final verdict: ' + (
            "[[A]]" if "correct" in a else "[[B]]"
        )

    assert pairwise(prefers_correct, "Q?", "a correct answer", "a wrong answer")["winner"] == "A"
    out = pairwise(prefers_correct, "Q?", "a wrong answer", "a correct answer")
    assert out["winner"] == "B" and out["verdicts"] == ["B", "B"]

    ties = pairwise(lambda m: "Both are equally good. [[C]]", "Q?", "x", "y")
    assert ties["winner"] == "tie" and ties["verdicts"] == ["tie", "tie"]
    spelled = pairwise(lambda m: "Final verdict: tie", "Q?", "x", "y")
    assert spelled["verdicts"] == ["tie", "tie"] and spelled["unparsed"] == 0


def test_pairwise_unparsed_replies_are_counted_and_never_win() -> None:
    replies = iter(["[[A]]", "I refuse to choose."])
    out = pairwise(lambda m: next(replies), "Q?", "x", "y")
    assert out == {
        "winner": "tie",
        "verdicts": ["A", None],
        "raw": ["[[A]]", "I refuse to choose."],
        "unparsed": 1,
    }


def simulated_games(
    strengths: dict[str, float], n: int, seed: int, ties: float = 0.1
) -> list[tuple[str, str, float]]:
    """Bradley–Terry games with the given Elo-scale strengths; a share `ties` of them are tied regardless."""
    rng = np.random.default_rng(seed)
    names = list(strengths)
    games = []
    for _ in range(n):
        a, b = rng.choice(names, 2, replace=False)
        p_a = 1 / (1 + 10 ** ((strengths[b] - strengths[a]) / 400))
        u = rng.random()
        games.append((str(a), str(b), 0.5 if u < ties else float(rng.random() < p_a)))
    return games


STRENGTHS = {"big": 1300.0, "medium": 1100.0, "small": 950.0, "tiny": 650.0}


@pytest.mark.parametrize("rate", [bradley_terry, elo])
def test_ratings_recover_known_order(rate) -> None:
    games = simulated_games(STRENGTHS, 1200, seed=1)
    ratings = rate(games, n_bootstrap=100, seed=0)
    assert sorted(ratings, key=lambda m: -ratings[m]["rating"]) == list(STRENGTHS)
    assert np.mean([r["rating"] for r in ratings.values()]) == pytest.approx(1000)
    for name, r in ratings.items():
        assert r["ci_low"] <= r["rating"] <= r["ci_high"]
        assert r["games"] == sum(name in g[:2] for g in games)
    assert ratings == rate(games, n_bootstrap=100, seed=0)  # seeded


def test_bradley_terry_matches_true_strengths() -> None:
    ratings = bradley_terry(simulated_games(STRENGTHS, 3000, seed=2, ties=0.0), n_bootstrap=50)
    centre = np.mean(list(STRENGTHS.values()))
    for name, strength in STRENGTHS.items():
        r = ratings[name]
        assert r["rating"] == pytest.approx(strength - centre + 1000, abs=60)
        assert r["ci_high"] - r["ci_low"] < 150


def test_bradley_terry_two_models_closed_form() -> None:
    # Two models: the MLE odds are the win ratio (here with the prior's virtual tie: half a win each).
    games = [("a", "b", 1.0)] * 30 + [("a", "b", 0.0)] * 10 + [("b", "a", 0.5)] * 4
    ratings = bradley_terry(games, n_bootstrap=10)
    gap = 400 * np.log10((30 + 2 + 0.5) / (10 + 2 + 0.5))
    assert ratings["a"]["rating"] - ratings["b"]["rating"] == pytest.approx(gap, abs=1e-4)
    assert ratings["a"]["rating"] + ratings["b"]["rating"] == pytest.approx(2000)
    assert ratings["a"]["games"] == ratings["b"]["games"] == 44
    assert bradley_terry([]) == elo([]) == {}


def test_unbeaten_model_gets_a_finite_rating_and_bad_outcomes_fail() -> None:
    games = [("a", "b", 1.0)] * 5 + [("b", "c", 0.5)] * 4
    ratings = bradley_terry(games, n_bootstrap=20)
    assert all(np.isfinite(r["rating"]) for r in ratings.values())
    assert ratings["a"]["rating"] > ratings["b"]["rating"]
    assert ratings["b"]["rating"] == pytest.approx(ratings["c"]["rating"], abs=60)
    with pytest.raises(ValueError, match="bad outcome"):
        bradley_terry([("a", "a", 1.0)])
    with pytest.raises(ValueError, match="bad outcome"):
        elo([("a", "b", 0.7)])
