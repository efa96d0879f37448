"""Start and stop a live `llmworks serve` on a free loopback port, as a user would (tests, benchmarks)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

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
