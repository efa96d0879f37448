"""The command lines of the servers `bench/serve.py` and the tests compare: ours and `llama_cpp.server`."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["llama_cpp_server_cmd", "llmworks_serve_cmd"]


def llama_cpp_server_cmd(
    model: Path, port: int, n_ctx: int = 2048, n_threads: int | None = None
) -> list[str]:
    """`python -m llama_cpp.server` with its defaults, as a user would run it."""
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx)]
    if n_threads:
        cmd += ["--n_threads", str(n_threads)]
    return cmd


def llmworks_serve_cmd(port: int, extra: Sequence[str] = ()) -> list[str]:
    """`llmworks serve --port P` from this environment (the embedded model unless `extra` names one)."""
    return [sys.executable, "-m", "llmworks.cli", "serve", "--port", str(port), *extra]
