"""The registry of model families. The entries are data (`families.yaml`); this module only reads them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from llmworks.errors import UserError


@dataclass(frozen=True)
class ModelSpec:
    """One model of a family: its shape, where its chat template comes from, and how it stops."""

    name: str
    """Registry name, lower-case, e.g. `qwen2.5-7b-instruct`."""
    family: str
    """Family name, e.g. `qwen2.5`."""
    arch: str
    """HF architecture class, e.g. `Qwen2ForCausalLM`."""
    params: float
    """Parameter count (including embeddings)."""
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    context: int
    """Context length the model was trained for."""
    hf_repo: str = ""
    """HF repo id; resolved offline from the local HF cache only."""
    template: str = "tokenizer_config"
    """Where the chat template comes from: `tokenizer_config`, `gguf` or `none` (base models)."""
    stop: tuple[str, ...] = ()
    """Strings that end a chat turn (with the template's end-of-turn token): the chat policy stops on them."""
    tied_embeddings: bool = False
    embedded: str = ""
    """`package/file` of a model shipped inside an installed wheel (the embedded default)."""
    head_dim: int = 0
    """Per-head dimension when it is not hidden / heads (Gemma, Qwen3)."""
    system: str = ""
    """System prompt `chat`/`generate` use when the user gives none ("" = the template's own default)."""
    notes: str = ""

    @property
    def head_size(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def q_dim(self) -> int:
        """Width of the query projection (differs from `hidden` when head_dim is set, e.g. Gemma 2)."""
        return self.heads * self.head_size

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_size

    @property
    def layer_params(self) -> int:
        """Parameters of one decoder layer: q/k/v/o projections, a gated MLP (3 matrices) and 2 norms."""
        h = self.hidden
        return 2 * h * self.q_dim + 2 * h * self.kv_dim + 3 * h * self.intermediate + 2 * h

    @property
    def embedding_params(self) -> int:
        """Input embedding plus the LM head when it is a separate matrix."""
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    def shape_params(self) -> int:
        """Parameter count recomputed from the shape (biases ignored: they are < 0.1%)."""
        return self.layers * self.layer_params + self.embedding_params + self.hidden


DEFAULT_MODEL = "smollm2-135m-instruct"


@cache
def registry() -> dict[str, ModelSpec]:
    text = resources.files("llmworks.models").joinpath("families.yaml").read_text(encoding="utf-8")
    known = {f.name for f in dataclasses.fields(ModelSpec)}
    out: dict[str, ModelSpec] = {}
    for entry in yaml.safe_load(text):
        unknown = set(entry) - known
        if unknown:
            raise ValueError(f"families.yaml: {entry.get('name')}: unknown keys {sorted(unknown)}")
        entry["stop"] = tuple(entry.get("stop", ()))
        entry["params"] = float(entry["params"])  # YAML 1.1 reads 134.5e6 as a string
        spec = ModelSpec(**entry)
        out[spec.name] = spec
    return out


def get_spec(name: str) -> ModelSpec:
    """The registry entry for `name` (case-insensitive), or a clear error listing close names."""
    spec = registry().get(name.lower())
    if spec is None:
        import difflib

        close = difflib.get_close_matches(name.lower(), registry(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UserError(f"unknown model name '{name}'.{hint}", "See `llmworks models list`.")
    return spec


__all__ = ["DEFAULT_MODEL", "ModelSpec", "get_spec", "registry"]
