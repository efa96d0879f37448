"""Engines: one `Engine` seam, one registry of backends, one way to load a model."""

from __future__ import annotations

import os
from importlib import import_module
from typing import Any

from llmworks.engines.base import Delta, Engine, LoglikelihoodResult, SamplingParams
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
    """Load `model` (registry name, path, HF cache id; None = the embedded default) on `engine`."""
    source = resolve(model)
    name = engine or default_engine(source)
    if name not in ENGINES:
        raise UserError(f"unknown engine '{name}'.", f"Choose one of: {', '.join(ENGINES)}.")
    if name == "llamacpp" and source.kind != "gguf":
        raise UserError(
            f"the llamacpp engine needs a GGUF file, and {source.path} is an HF directory.",
            "Use --engine transformers, or convert it to GGUF first.",
        )
    module, _, cls = ENGINES[name].partition(":")
    return getattr(import_module(module), cls)(source, **options)


__all__ = [
    "ENGINES",
    "Delta",
    "Engine",
    "LoglikelihoodResult",
    "SamplingParams",
    "default_engine",
    "load_engine",
]
