"""Start and stop a live `llmworks serve` on a free loopback port, as a user would (tests, benchmarks), or an
ASGI app in a thread of this process (`serving`)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmworks.local_server import free_port, stop_process, wait_ready


@dataclass
class Server:
    base: str
    proc: subprocess.Popen[str]
    log: Path

    @property
    def v1(self) -> str:
        return self.base + "/v1"


def start_server(
    args: list[str], log: Path, env: dict[str, str] | None = None, timeout: float = 180
) -> Server:
    port = free_port()
    out = open(log, "w")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmworks.cli", "serve", *args, "--port", str(port)],
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        wait_ready(server.base, proc, timeout, log)  # type: ignore[arg-type]
    except BaseException:
        stop_server(server)
        raise
    return server


def stop_server(server: Server) -> None:
    stop_process(server.proc)


@contextmanager
def serving(app: Any, timeout: float = 10.0) -> Iterator[str]:
    """Serve the ASGI `app` with uvicorn in a daemon thread on a free loopback port; yields its base URL
    once it listens, and stops it on exit."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        if not server.started:
            raise RuntimeError(f"uvicorn did not start on port {port} within {timeout:.0f} s")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
