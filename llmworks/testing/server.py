"""Start and stop a live `llmworks serve` on a free loopback port, as a user would (tests, benchmarks)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class Server:
    base: str
    proc: subprocess.Popen[str]
    log: Path

    @property
    def v1(self) -> str:
        return self.base + "/v1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    args: list[str], log: Path, env: dict[str, str] | None = None, timeout: float = 180
) -> Server:
    port = free_port()
    out = open(log, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmworks.cli", "serve", *args, "--port", str(port)],
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return Server(base, proc, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_server(Server(base, proc, log))
    raise RuntimeError(f"server did not come up:\n{log.read_text()}")


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
