"""The `llmworks` command as a user runs it: help everywhere, and one clear line (exit 2) for bad input."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from llmworks import __version__
from llmworks.cli import app


def run(*args: str, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "llmworks.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def all_command_paths() -> list[list[str]]:
    paths = []

    def walk(cmd: Any, prefix: list[str]) -> None:
        paths.append(prefix)
        # typer vendors its own click, so a group is whatever has sub-commands
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*prefix, name])

    walk(typer.main.get_command(app), [])
    assert len(paths) > 30, paths  # every stage's sub-commands, not just the root
    return paths


def test_version() -> None:
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"llmworks {__version__}"


@pytest.mark.parametrize("path", all_command_paths(), ids=lambda p: " ".join(p) or "root")
def test_every_command_has_help(path: list[str]) -> None:
    from typer.testing import CliRunner

    r = CliRunner().invoke(app, [*path, "--help"])
    assert r.exit_code == 0, r.output
    assert "Usage" in r.output


def assert_one_line_error(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_missing_path(tmp_path: Path) -> None:
    assert_one_line_error(
        run("generate", str(tmp_path / "absent.gguf"), "hi"), "does not exist", "no download"
    )


def test_unknown_registry_name() -> None:
    assert_one_line_error(run("generate", "llama-9-999b", "hi"), "unknown", "models list")


def test_hf_dir_without_config(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text("{}")
    assert_one_line_error(run("generate", str(tmp_path), "hi"), "without config.json")


def test_truncated_gguf(tiny_gguf: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    data = tiny_gguf.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    assert_one_line_error(run("generate", str(cut), "hi"), "truncated")


def test_corrupt_gguf(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGML" + os.urandom(4096))
    assert_one_line_error(run("generate", str(bad), "hi"), "not a GGUF file")


def test_prompt_longer_than_context(tiny_gguf: Path) -> None:
    r = run("generate", str(tiny_gguf), "word " * 400, "--ctx", "256", "--raw")
    assert_one_line_error(r, "prompt is 401 tokens", "context holds 256", "--ctx")


def test_bad_sampling_option(tiny_gguf: Path) -> None:
    assert_one_line_error(run("generate", str(tiny_gguf), "hi", "--top-p", "2"), "top_p")


def test_generate_streams_to_stdout(tiny_gguf: Path) -> None:
    r = run("generate", str(tiny_gguf), "hello", "-n", "8")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()
    assert "tokens" in r.stderr and "tok/s" in r.stderr


def test_chat_commands_over_stdin(tiny_gguf: Path) -> None:
    r = run(
        "chat",
        str(tiny_gguf),
        "-n",
        "6",
        stdin="hello\n/system Be terse.\n/reset\nagain\n/bogus\n/exit\nnever\n",
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("finish:") == 2  # two answered turns; nothing after /exit
    assert "system prompt set" in r.stderr and "conversation cleared" in r.stderr
    assert "unknown command /bogus" in r.stderr
