"""`EvalConfig`: what `llmworks eval run` runs, as one typed config (YAML file, `key=value`, flags).

    llmworks eval run --config eval.yaml limit=20 --base-url http://127.0.0.1:8000/v1

Kept apart from the runner so the CLI can build its flags' help from the field docstrings without loading the
runner.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from llmworks.config import StageConfig


class EvalConfig(StageConfig):
    tasks: list[str] = Field(default_factory=list)
    """Tasks: names (smoke, mmlu, arc, hellaswag, ...), NAME:OPTION (arc:letters), NAME=PATH, task YAMLs;
    with harness=lm-eval, lm-eval task names (NAME=FILE: that task over a local file)."""
    model: str | None = None
    """A local model (registry name, path; None: the embedded default), or the served name with base_url."""
    base_url: str | None = None
    """An OpenAI-compatible server to evaluate instead of a local model, e.g. http://127.0.0.1:8000/v1."""
    api_key: str | None = None
    """The server's API key (masked in the saved config)."""
    output_dir: str | None = None
    """The run directory (default out/eval/<model>); rerun the same command to resume."""
    limit: int | None = Field(default=None, ge=1)
    """At most this many samples per task."""
    concurrency: int = Field(default=4, ge=1)
    """Requests in flight at once (an HTTP server; a local engine batches them)."""
    shots: int = Field(default=0, ge=0)
    """Few-shot examples per prompt (from the benchmark's dev/train files)."""
    chat: bool | None = None
    """Chat template on/off. None: generation tasks use it when the model has one (always over HTTP);
    log-likelihood tasks never do (as lm-eval); True: both use it (with the model's default system prompt)."""
    method: Literal["auto", "loglikelihood", "generate"] = "auto"
    """How multiple-choice tasks are answered: auto = log-likelihood when the model can score text (a local
    engine, or a server with /v1/completions echo+logprobs), else generation; generate forces generation."""
    tool_choice: Literal["auto", "required"] = "auto"
    """Function-calling tasks (bfcl:*): auto = the model decides whether to call a tool (as BFCL asks);
    required = it must call one, which llmworks (serve, or a local model) enforces with a grammar, so the
    call parses (one call per reply: parallel categories cannot be right)."""
    tool_grammar: bool = True
    """Function-calling tasks, tool_choice auto, on a local llama.cpp model: a call the model starts is held
    to the tools' schemas by a grammar, as `llmworks serve` does (off: free text, parsed afterwards; over
    HTTP the server decides: `llmworks serve --no-tool-grammar`)."""
    judge: str | None = None
    """A local model or a server URL that grades tasks with the "judge" metric."""
    engine: str | None = None
    """llamacpp | transformers, for a local model (default: by its format)."""
    ctx: int | None = Field(default=None, ge=16)
    """Context length for a local model."""
    retries: int = Field(default=4, ge=0)
    """Retries (with exponential backoff) of a request to a server that is down or answers 5xx/429."""
    harness: Literal["llmworks", "lm-eval"] = "llmworks"
    """Who runs the tasks: llmworks, or lm-evaluation-harness itself on the same model (the reference
    number; needs `pip install llmworks[harness]`)."""
    harness_include: str | None = None
    """harness=lm-eval: a folder of extra lm-eval task YAMLs (its --include_path)."""
    harness_tokenizer: str | None = None
    """harness=lm-eval over base_url: the model's HF tokenizer folder (default: the served model's, when
    llmworks finds that model locally)."""

    @field_validator("tasks", mode="before")
    @classmethod
    def _split(cls, v: object) -> object:
        return [t.strip() for t in v.split(",") if t.strip()] if isinstance(v, str) else v

    def problems(self) -> list[str]:
        found = [*super().problems()]
        if not self.tasks:
            found.append("no tasks given (tasks=... or --tasks)")
        if self.harness == "lm-eval" and self.judge:
            found.append(
                "judge with harness=lm-eval (judge grading is llmworks' own; lm-eval tasks carry their metrics)"
            )
        return found
