"""Start a server as a subprocess on a free loopback port and wait until it answers (tests, benchmarks,
the demo, the vLLM proxy)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from llmworks.errors import UserError

__all__ = ["free_port", "running_server", "stop_process", "wait_ready"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_ready(
    base_url: str,
    proc: subprocess.Popen | None = None,  # type: ignore[type-arg]
    timeout: float = 120.0,
    log: Path | None = None,
    path: str = "/v1/models",
    any_status: bool = True,
) -> None:
    """Poll GET `path` until it answers. `any_status`: any HTTP status counts (a 401 still means it is up)."""
    see = f"See its log: {log}" if log else "Run the same command by hand to see its output."
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise UserError(f"the server exited with code {proc.returncode} before it was ready.", see)
        try:
            with urllib.request.urlopen(f"{base_url}{path}", timeout=2):
                return
        except urllib.error.HTTPError:
            if any_status:
                return
            time.sleep(0.5)
        except OSError:
            time.sleep(0.2)
    raise UserError(f"the server at {base_url} was not ready after {timeout:.0f} s.", see)


def stop_process(proc: subprocess.Popen, grace: float = 20.0) -> None:  # type: ignore[type-arg]
    """SIGTERM, then SIGKILL if it has not exited after `grace` seconds."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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
        stop_process(proc, 10)
        if log:
            out.close()  # type: ignore[union-attr]
