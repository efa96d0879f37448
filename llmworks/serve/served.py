"""The models a server serves: each is an engine, driven by its own scheduler thread."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from llmworks.engines import default_engine, load_engine
from llmworks.engines.base import Engine
from llmworks.engines.scheduler import BatchScheduler
from llmworks.errors import UserError
from llmworks.models.sources import resolve


@dataclass
class ServedModel:
    name: str
    engine: Engine
    engine_kind: str
    ctx: int
    """Context per sequence: the prompt plus the completion must fit."""
    created: int = field(default_factory=lambda: int(time.time()))
    tool_grammar: bool = True
    """tool_choice auto: calls grammar-constrained where the engine can (`--no-tool-grammar`: free text)."""

    @property
    def batched(self) -> bool:
        return isinstance(self.engine.scheduler, BatchScheduler)


def load_served_models(
    models: list[str], engine: str | None, loras: list[str], parallel: int, ctx: int, max_queue: int
) -> dict[str, ServedModel]:
    served: dict[str, ServedModel] = {}
    for arg in models or [None]:  # type: ignore[list-item]
        source = resolve(arg)
        kind = engine or default_engine(source)
        _add(served, source.name, arg, kind, parallel, ctx, max_queue)
    for spec in loras:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise UserError(f"--lora expects NAME=PATH, got '{spec}'.", "Example: --lora sql=runs/sql-lora")
        source = resolve(path)
        if source.adapter is None:
            raise UserError(
                f"--lora {name}: {path} is not a LoRA adapter directory (no adapter_config.json).", ""
            )
        _add(served, name, path, "transformers", parallel, ctx, max_queue)
    return served


def _add(
    served: dict[str, ServedModel],
    name: str,
    arg: str | None,
    kind: str,
    parallel: int,
    ctx: int,
    max_queue: int,
) -> None:
    if name in served:
        raise UserError(f"two served models are named '{name}'.", "Give LoRA adapters distinct names.")
    eng = load_engine(arg, kind, n_ctx=ctx, parallel=parallel, max_queue=max_queue)
    eng.scheduler.start()
    served[name] = ServedModel(name, eng, kind, min(ctx, eng.context_length))
