"""Errors a user can cause: one line that names the problem and the fix; the CLI exits 2 on them."""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix (a path, a name, an input). Never shown with a traceback."""

    exit_code = 2

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} {fix}".strip())


class ModelNotFound(UserError):
    """A model argument that no source could resolve."""


class BadModel(UserError):
    """A model that exists but cannot be loaded (corrupt GGUF, missing config.json, ...)."""


class PromptTooLong(UserError):
    """A prompt that does not fit the context window."""

    def __init__(self, n_prompt: int, n_ctx: int, max_tokens: int = 0) -> None:
        self.n_prompt, self.n_ctx = n_prompt, n_ctx
        super().__init__(
            f"prompt is {n_prompt} tokens but the context holds {n_ctx}"
            + (f" (with max_tokens={max_tokens} to generate)" if max_tokens else "")
            + ".",
            "Shorten the prompt, lower max_tokens, or raise the context length (--ctx).",
        )


class MissingExtra(UserError):
    """An optional backend that is not installed."""

    def __init__(self, what: str, extra: str) -> None:
        super().__init__(f"{what} is not installed.", f"Install it with: pip install 'llmworks[{extra}]'")
