"""Two-turn memory: the held-out conversations of `builtin:memory` ("Remember this code word: walnut." ...
"What was the code word?"), asked with the conversation's own first reply, so each sample is one request a
server can batch; correct when the second answer contains the word. It checks that a tuned model still holds
a conversation: a model that lost it answers the second question with an introduction or a made-up word.
(`llmworks demo` step 8 asks the model's own first reply instead, one conversation at a time.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmworks.eval.tasks.base import Env, Request, Scored, Task


@dataclass
class TwoTurn(Task):
    name: str = "two-turn"
    kind: str = "two-turn"
    formulation = "generate"
    reference = "the held-out two-turn conversations of builtin:memory, first reply given"
    max_tokens: int = 24  # the word comes first in an answer that has it

    def samples(self) -> list[dict[str, Any]]:
        from llmworks.data.builtin import memory_messages

        return [
            {"id": str(i), "messages": r["messages"][:3], "word": r["word"]}
            for i, r in enumerate(memory_messages("test"))
        ]

    def requests(self, sample: dict[str, Any], env: Env) -> list[Request]:
        if env.chat:
            return [Request.chat(sample["messages"], max_tokens=self.max_tokens)]
        first, reply, ask = (m["content"] for m in sample["messages"])
        prompt = f"User: {first}\nAssistant: {reply}\nUser: {ask}\nAssistant:"
        return [Request("complete", prompt, max_tokens=self.max_tokens, stop=("\nUser:",))]

    def score(self, sample: dict[str, Any], outputs: list[Any], env: Env) -> Scored:
        answer = (outputs[0] or "").strip()
        return Scored({"acc": float(sample["word"] in answer.lower())}, sample["word"], answer)
