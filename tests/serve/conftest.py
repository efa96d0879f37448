"""A live `llmworks serve` on the tiny model for the API tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llmworks.testing.server import Server, start_server, stop_server


@pytest.fixture(scope="module")
def tiny_server(tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("serve") / "server.log"
    server = start_server([str(tiny_gguf), "--parallel", "4", "--ctx", "512"], log)
    yield server
    stop_server(server)
