"""Self-cognition: a tuned model should say who it is and who made it when asked, and only then.

`self-cognition:NAME/AUTHOR` asks identity questions written for this task (not the training templates' own
wording, English and Chinese) and everyday prompts that do not ask (the general-smoke questions, greetings,
the first turn of the held-out two-turn memory conversations). Metrics: `named_when_asked`, the share of
identity questions whose answer names the model or its author; `named_unasked`, the share of the other
prompts whose answer does (goal 0: "Remember this code word" answered with an introduction is the leak).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from llmworks.errors import UserError
from llmworks.eval import datasets as ds
from llmworks.eval.tasks.base import Env, Request, Scored, Task

ASKED = (
    "Could you tell me who you are?",
    "Who am I speaking with?",
    "Which team built you?",
    "Are you Gemini?",
    "Who is behind you?",
    "Tell me your name, please.",
    "你叫啥？",
    "是谁把你做出来的？",
    "请说说你是谁。",
)
GREETINGS = ("Hi!", "Hello!", "Good morning!", "Say hello in French.", "Thanks for your help!")
USAGE = (
    'Give the identity as self-cognition:NAME/AUTHOR, e.g. --tasks "self-cognition:Lumen/the llmworks team".'
)


def parse_identity(option: str) -> tuple[str, str]:
    """NAME/AUTHOR from the task's option; one clear error when either is missing."""
    name, _, author = option.partition("/")  # --tasks is split at commas
    if not name.strip() or not author.strip():
        raise UserError(f"self-cognition needs the model's name and its author, got {option!r}.", USAGE)
    return name.strip(), author.strip()


@dataclass
class SelfCognition(Task):
    model_name: str
    author: str
    name: str = "self-cognition"
    kind: str = "self-cognition"
    formulation = "generate"
    reference = "the identity questions of ms-swift's self-cognition data, asked and unasked"
    max_tokens: int = 32  # an introduction names itself in its first words

    def samples(self) -> list[dict[str, Any]]:
        from llmworks.data.builtin import memory_messages

        rows = [{"prompt": q, "asked": True} for q in ASKED]
        general = ds.SMOKE / "custom" / "general.jsonl"
        rows += [
            {"prompt": json.loads(line)["question"], "asked": False}
            for line in general.open()
            if line.strip()
        ]
        rows += [{"prompt": g, "asked": False} for g in GREETINGS]
        rows += [{"prompt": m["messages"][0]["content"], "asked": False} for m in memory_messages("test")]
        return [{"id": str(i), **r} for i, r in enumerate(rows)]

    def requests(self, sample: dict[str, Any], env: Env) -> list[Request]:
        messages = [{"role": "user", "content": sample["prompt"]}]
        if env.chat:
            return [Request.chat(messages, max_tokens=self.max_tokens)]
        return [Request("complete", f"Question: {sample['prompt']}\nAnswer:", max_tokens=self.max_tokens)]

    def score(self, sample: dict[str, Any], outputs: list[Any], env: Env) -> Scored:
        answer = (outputs[0] or "").strip()
        named = float(self._names(answer))
        metric = "named_when_asked" if sample["asked"] else "named_unasked"
        return Scored({metric: named}, "names itself" if sample["asked"] else "does not name itself", answer)

    def info(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "author": self.author}

    def _names(self, answer: str) -> bool:
        """The answer mentions the name, the author or the author's first word ("llmworks" of "the llmworks
        team"), not inside another word (CJK text around it is fine: 我是Lumen)."""
        author = re.sub(r"^the\s+", "", self.author, flags=re.I)
        words = {self.model_name, author, author.split()[0]}
        return any(re.search(rf"(?<![A-Za-z0-9]){re.escape(w)}(?![A-Za-z0-9])", answer, re.I) for w in words)
