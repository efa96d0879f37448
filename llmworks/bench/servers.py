"""Start and stop OpenAI-compatible servers as subprocesses on free loopback ports (benchmarks, tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from llmworks.errors import UserError

__all__ = ["free_port", "llama_cpp_server_cmd", "llmworks_serve_cmd", "running_server", "wait_ready"]


def free_port() -> int:
    """A loopback port nobody listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def wait_ready(
    base_url: str,
    proc: subprocess.Popen[bytes] | None = None,
    timeout: float = 120.0,
    log: Path | None = None,
) -> None:
    """Poll GET /v1/models until it answers (any HTTP status counts: a 401 still means it is up)."""
    see = f"See its log: {log}" if log else "Run the same command by hand to see its output."
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise UserError(f"the server exited with code {proc.returncode} before it was ready.", see)
        try:
            with urllib.request.urlopen(f"{base_url}/v1/models", timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise UserError(f"the server at {base_url} was not ready after {timeout:.0f} s.", see)


@contextmanager
def running_server(
    cmd: Sequence[str], port: int, log: Path | None = None, timeout: float = 120.0
) -> Iterator[str]:
    """Run `cmd` (which must listen on 127.0.0.1:`port`), yield its base URL, stop it on exit (also on error)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, proc, timeout, log)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log:
            out.close()  # type: ignore[union-attr]
