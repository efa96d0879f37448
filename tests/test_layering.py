"""The floors of docs/architecture.md: a module imports only floors below its own (or its own subpackage).
Each stage's `cli.py` belongs to the CLI floor, the top one: it maps commands onto the stage's functions."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parents[1] / "llmworks"

FLOORS = [
    {"errors"},
    {"atomic", "console", "environment"},
    {"config", "local_server"},
    {"models"},
    {"engines"},
    {"client"},
    {"chat", "export"},
    {"data"},
    {"eval"},
    {"train", "rag"},
    {"agent"},
    {"serve", "servebench"},
    {"testing"},
    {"cli", "config_cli", "demo", "__main__"},
]
LEVEL = {name: i for i, floor in enumerate(FLOORS) for name in floor}
CLI = len(FLOORS) - 1


def unit(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0].removesuffix(".py")


def level(path: Path) -> int:
    return CLI if path.name == "cli.py" else LEVEL[unit(path)]


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n.split(".")[1] for n in names if n.startswith("llmworks.")}


def test_every_unit_has_a_floor() -> None:
    units = {unit(p) for p in ROOT.rglob("*.py") if p.name != "__init__.py" or p.parent != ROOT}
    assert units <= set(LEVEL), sorted(units - set(LEVEL))


def test_no_import_goes_up_a_floor() -> None:
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.parent == ROOT and path.name == "__init__.py":
            continue
        src, lvl = unit(path), level(path)
        for dst in imported(path):
            if dst != src and LEVEL[dst] >= lvl and lvl != CLI:
                upward.append(f"{path.relative_to(ROOT.parent)} imports llmworks.{dst}")
    assert not upward, "\n".join(upward)
