"""Engines: one `Engine` seam, one registry of backends, one way to load a model."""

from __future__ import annotations

import inspect
import os
from importlib import import_module
from typing import Any

from llmworks.engines.base import Engine
from llmworks.engines.types import Delta, LoglikelihoodResult, SamplingParams
from llmworks.errors import UserError
from llmworks.models.sources import ModelSource, resolve

ENGINES: dict[str, str] = {
    "llamacpp": "llmworks.engines.llamacpp:LlamaCppEngine",
    "transformers": "llmworks.engines.transformers:TransformersEngine",
}


def default_engine(source: ModelSource) -> str:
    """GGUF files run on llama.cpp; HF directories and adapters on transformers."""
    return "llamacpp" if source.kind == "gguf" and source.adapter is None else "transformers"


def load_engine(
    model: str | os.PathLike[str] | None = None, engine: str | None = None, **options: Any
) -> Engine:
    """Load `model` (registry name, path, HF cache id; None = the embedded default) on `engine`.

    Options: n_ctx, n_threads, max_queue (every engine); parallel, prefix_cache (llamacpp). An option the
    chosen engine does not have is dropped (transformers runs one sequence at a time whatever `parallel`).
    """
    source = resolve(model)
    name = engine or default_engine(source)
    if name == "vllm":
        raise UserError(
            "vLLM runs as a server, not inside this process.",
            "Start it with `llmworks serve MODEL --engine vllm`, then point this command at it with --base-url.",
        )
    if name not in ENGINES:
        raise UserError(f"unknown engine '{name}'.", f"Choose one of: {', '.join(ENGINES)}.")
    if name == "llamacpp" and source.kind != "gguf":
        raise UserError(
            f"the llamacpp engine needs a GGUF file, and {source.path} is an HF directory.",
            "Use --engine transformers, or convert it to GGUF first.",
        )
    module, _, cls_name = ENGINES[name].partition(":")
    cls = getattr(import_module(module), cls_name)
    accepted = inspect.signature(cls).parameters
    return cls(source, **{k: v for k, v in options.items() if k in accepted and v is not None})


__all__ = [
    "ENGINES",
    "Delta",
    "Engine",
    "LoglikelihoodResult",
    "SamplingParams",
    "default_engine",
    "load_engine",
]
