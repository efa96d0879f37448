"""What every export does with the file system: check the target and the free space before any heavy work,
build the output under a temporary name next to it, and rename it into place only when it is complete."""

from __future__ import annotations

import shutil
from pathlib import Path

from llmworks.errors import UserError
from llmworks.models.sources import ModelSource

TRAIN_FILES = {"config.yaml": "train_config.yaml", "summary.json": "train_summary.json"}
"""A run directory's provenance files → their names in an export, so a card made later still finds them."""


def check_target_dir(out: Path) -> None:
    """An output directory must be new (or empty): an export never mixes its files with others."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(
            f"output {out} already exists and is not an empty directory.",
            "Remove it or choose another -o.",
        )


def check_disk_space(target: Path, need: int, what: str) -> None:
    """Fail before writing when the file system of `target` has less than `need` bytes free."""
    target.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target).free
    if free < need:
        raise UserError(
            f"not enough disk space for {what} in {target}: it needs about {gib(need)}, {gib(free)} is free.",
            "Free some space or write to another disk with -o.",
        )


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.1f} MiB"


def size_on_disk(path: Path) -> int:
    """Bytes of a file, or of every file under a directory."""
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def weights_size(hf_dir: Path) -> int:
    """Bytes of the weight files of an HF directory."""
    return sum(f.stat().st_size for f in hf_dir.iterdir() if f.suffix in (".safetensors", ".bin"))


def model_size(source: ModelSource) -> int:
    """What a model weighs: a GGUF file, or an HF directory's weights (plus its adapter's)."""
    if source.kind == "gguf":
        return source.path.stat().st_size
    return weights_size(source.path) + (weights_size(source.adapter) if source.adapter else 0)


def copy_train_files(src: Path, dst: Path) -> None:
    """Carry the training config and summary along, from a run directory or an earlier export."""
    for run_name, export_name in TRAIN_FILES.items():
        for name in (export_name, run_name):
            if (src / name).is_file():
                shutil.copy2(src / name, dst / export_name)
                break
