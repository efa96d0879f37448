"""`read_file`: read a text file (or list a directory) inside the configured directories only.

A path is resolved (symlinks followed) before it is checked, so `..` and links cannot leave the allowed
directories; binary files and files past the size cap are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from llmworks.agent.tools.base import Tool, ToolError
from llmworks.errors import UserError

__all__ = ["ReadFile"]

MAX_BYTES = 200_000


class ReadFile(Tool):
    name = "read_file"
    parameters = {  # noqa: RUF012
        "type": "object",
        "properties": {
            "path": {
                "type": "string",
                "description": "A file or directory path, relative to a directory below.",
            }
        },
        "required": ["path"],
    }

    def __init__(self, roots: Sequence[Path | str]) -> None:
        if not roots:
            raise UserError(
                "the read_file tool needs the directories it may read.",
                "List them in the agent config: read_dirs: [docs/].",
            )
        self.roots = [Path(r).expanduser().resolve() for r in roots]
        missing = [str(r) for r in self.roots if not r.is_dir()]
        if missing:
            raise UserError(f"read_file: no such directory: {', '.join(missing)}.", "Fix read_dirs.")
        self.description = (
            "Read a text file, or list a directory, inside: " + ", ".join(str(r) for r in self.roots) + "."
        )

    def __call__(self, path: str) -> str:  # type: ignore[override]
        target = self._resolve(path)
        if target.is_dir():
            entries = sorted(target.iterdir())[:200]
            return "\n".join(p.name + ("/" if p.is_dir() else "") for p in entries) or "(empty directory)"
        if not target.is_file():
            raise ToolError(f"no such file: {path}.")
        if target.stat().st_size > MAX_BYTES:
            raise ToolError(f"{path} is larger than {MAX_BYTES // 1000} kB.")
        data = target.read_bytes()
        if b"\0" in data[:4096]:
            raise ToolError(f"{path} is not a text file.")
        return data.decode("utf-8", errors="replace")

    def _resolve(self, path: str) -> Path:
        raw = Path(path).expanduser()
        candidates = [raw] if raw.is_absolute() else [root / raw for root in self.roots]
        for c in candidates:
            resolved = c.resolve()
            if any(resolved == r or resolved.is_relative_to(r) for r in self.roots) and resolved.exists():
                return resolved
        for c in candidates:
            resolved = c.resolve()
            if not any(resolved == r or resolved.is_relative_to(r) for r in self.roots):
                raise ToolError(
                    f"{path} is outside the directories this tool may read ({', '.join(map(str, self.roots))})."
                )
        raise ToolError(f"no such file: {path}.")
