"""Chat templates, taken from the model itself (tokenizer_config / chat_template.jinja, or GGUF metadata)
and rendered with transformers' sandboxed jinja renderer, so every engine formats turns identically."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from llmworks.errors import UserError

Message = Mapping[str, Any]
"""An OpenAI-style message: {"role": "system"|"user"|"assistant"|"tool", "content": str, ...}."""

_MARK = "\x1fLLMWORKS_END_OF_TURN_PROBE\x1f"
# Control tokens look like <|im_end|>, <|eot_id|>, <end_of_turn>, </s>, [/INST], <｜end▁of▁sentence｜>.
_CONTROL = re.compile(r"<\|[^|>\s]+\|>|<｜[^｜]+｜>|</?[a-z_]+>|\[/?[A-Z_]+\]")


@dataclass(frozen=True)
class ChatTemplate:
    source: str
    """The jinja text."""
    origin: str
    """Where it came from (shown by `models check`)."""
    bos_token: str = ""
    eos_token: str = ""

    def render(
        self,
        messages: Sequence[Message],
        add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> str:
        from jinja2 import TemplateError
        from transformers.utils.chat_template_utils import render_jinja_template

        if not messages:
            raise UserError("no messages to render.", "Give at least one user message.")
        try:
            rendered, _ = render_jinja_template(
                [list(messages)],
                tools=list(tools) if tools else None,
                chat_template=self.source,
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
            )
        except TemplateError as e:  # templates raise to reject a conversation shape (e.g. no system role)
            raise UserError(f"the chat template ({self.origin}) rejected the conversation: {e}", "") from None
        return rendered[0]

    @cached_property
    def end_of_turn(self) -> str | None:
        """The control token the template writes after an assistant message (None if it writes none)."""
        convo = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _MARK}]
        try:
            text = self.render(convo, add_generation_prompt=False)
        except UserError:
            return None
        after = text.split(_MARK, 1)[1] if _MARK in text else ""
        m = _CONTROL.match(after.lstrip(" "))
        return m.group(0) if m else None


def template_from_tokenizer(tokenizer: Any, origin: str) -> ChatTemplate | None:
    """The template of an HF tokenizer (tokenizer_config.json or chat_template.jinja), if it has one."""
    source = getattr(tokenizer, "chat_template", None)
    if isinstance(source, dict):  # several named templates: use the default one
        source = source.get("default") or next(iter(source.values()), None)
    if not source:
        return None
    return ChatTemplate(source, origin, tokenizer.bos_token or "", tokenizer.eos_token or "")


def no_template_error(model: str) -> UserError:
    return UserError(
        f"model '{model}' has no chat template (a base model, or its tokenizer config lacks one).",
        "Use `llmworks generate --raw` for plain completion, or add a chat_template to the tokenizer config.",
    )
