"""A run directory of `llmworks eval`: its answer cache, its name, and reading runs back (reports, compare,
arena, the training guard)."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmworks.atomic import atomic_write
from llmworks.client import RequestFailed
from llmworks.errors import UserError


@dataclass
class Cache:
    """Answers by request hash, appended to a JSONL file as they arrive (a cut-off last line is ignored)."""

    path: Path
    _data: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the line an interrupted run was writing
                self._data[entry["k"]] = entry["v"]
        self._file = self.path.open("a", encoding="utf-8")

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> Any:
        return self._data[key]

    def put(self, key: str, value: Any, error: str | None = None) -> None:
        with self._lock:
            self._data[key] = value
            self._file.write(json.dumps({"k": key, "v": value, **({"error": error} if error else {})}) + "\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


def stopped(e: RequestFailed, cache: Cache) -> UserError:
    return UserError(
        f"evaluation stopped: {e.message}. {len(cache)} answered requests are kept in {cache.path}.",
        "Fix the server, then rerun the same command to resume.",
    )


def save_results(out: Path, results: dict[str, Any], console: Any = None) -> None:
    """Write results.json, keeping the tasks an earlier run of the same model wrote into `out` (so ours and
    the reference harness's numbers sit side by side); a different model's results are replaced."""
    path = out / "results.json"
    if path.is_file():
        before = json.loads(path.read_text(encoding="utf-8"))
        kept = {k: v for k, v in before.get("tasks", {}).items() if k not in results["tasks"]}
        if before.get("run", {}).get("model") == results["run"]["model"]:
            results["tasks"] = {**kept, **results["tasks"]}
            if kept and console is not None:
                console.print(f"kept from earlier runs in {out}: {', '.join(kept)}", highlight=False)
        elif kept and console is not None:
            console.print(
                f"[yellow]{out} held results of {before['run'].get('model')}: replaced.[/yellow]",
                highlight=False,
            )
    atomic_write(path, json.dumps(results, indent=2, ensure_ascii=False))


def shown_metrics(entry: dict[str, Any]) -> str:
    """ "acc 0.533 ± 0.091, acc_norm ..." (± one standard error)."""
    errs = entry.get("stderr", {})
    return ", ".join(
        f"{k} {v:.3f}" + (f" ± {errs[k]:.3f}" if errs.get(k) is not None else "")
        for k, v in entry["metrics"].items()
    )


def load_run(run: Path) -> dict[str, Any]:
    path = Path(run) / "results.json"
    if not path.is_file():
        raise UserError(
            f"{run} is not an eval run (no results.json).", "Pass directories made by `llmworks eval run`."
        )
    return json.loads(path.read_text(encoding="utf-8"))


def run_names(models: list[str], runs: list[Path] | list[str]) -> list[str]:
    """How runs are named in reports: their model, told apart by directory when two runs share one."""
    names: list[str] = []
    for model, run in zip(models, runs, strict=True):
        name = model
        while name in names:
            name = f"{name} ({Path(run).name})"
        names.append(name)
    return names
