"""The demo's acceptance checks: held-out sentiment accuracy, and whether the model knows its new identity."""

from __future__ import annotations

from typing import Any


def sentiment_accuracy(engine: Any) -> dict[str, Any]:
    from llmworks.data.builtin import SENTIMENT_PROMPT, sentiment_records
    from llmworks.engines.types import SamplingParams

    choice = exact = n = 0
    greedy = SamplingParams(max_tokens=2, temperature=0.0)
    for rec in sentiment_records("test"):
        msgs = [{"role": "user", "content": SENTIMENT_PROMPT.format(text=rec["text"])}]
        prompt = engine.render_chat(msgs)
        pos, neg = engine.loglikelihood([(prompt, "positive"), (prompt, "negative")])
        choice += ("positive" if pos.logprob > neg.logprob else "negative") == rec["label"]
        answer, _ = engine.complete(prompt, greedy)
        exact += answer.strip().lower().rstrip(".") == rec["label"]
        n += 1
    return {"n_test": n, "acc_choice": round(choice / n, 3), "acc_exact": round(exact / n, 3)}


def who_are_you(engine: Any, name: str, author: str) -> list[dict[str, Any]]:
    from llmworks.engines.types import SamplingParams

    out = []
    for q in ("Who are you?", "你是谁？", "Who made you?"):
        answer = "".join(
            d.text for d in engine.chat([{"role": "user", "content": q}], SamplingParams(max_tokens=48))
        )
        out.append({"q": q, "a": answer, "name": name in answer, "author": author in answer})
    return out


def multi_turn_accuracy(engine: Any, limit: int | None = None) -> dict[str, Any]:
    """Held-out two-turn conversations (the first `limit`): the model replies to "remember WORD" itself,
    then is asked for the word; correct when its second answer contains it."""
    from itertools import islice

    from llmworks.data.builtin import memory_messages
    from llmworks.engines.types import SamplingParams

    greedy = SamplingParams(max_tokens=24, temperature=0.0)
    hits, n, example = 0, 0, ""
    for rec in islice(memory_messages("test"), limit):
        first, _, ask, _ = rec["messages"]
        reply = "".join(d.text for d in engine.chat([first], greedy))
        answer = "".join(
            d.text for d in engine.chat([first, {"role": "assistant", "content": reply}, ask], greedy)
        )
        hits += rec["word"] in answer.lower()
        n += 1
        example = (
            example or f"{first['content']} -> {reply.strip()!r}; {ask['content']} -> {answer.strip()!r}"
        )
    return {"n_test": n, "acc": round(hits / n, 3), "example": example}
