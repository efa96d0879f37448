"""`llmworks agent ...` as a user runs it: the built-in tools listed, and one clear line (exit 2, no
traceback) for each kind of bad input, before any model is loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmworks.agent.tools import BUILTIN
from llmworks.cli import app
from llmworks.errors import UserError

CONFIGS = Path(__file__).parents[2] / "configs" / "agents"


def invoke(*args: str) -> tuple[int, str]:
    """(exit code, output); a UserError is exit 2 with its message, as the root CLI prints it."""
    r = CliRunner().invoke(app, ["agent", *args])
    if isinstance(r.exception, UserError):
        return 2, f"error: {r.exception.problem} {r.exception.fix}"
    if r.exception and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.output


def test_tools_lists_every_builtin_with_its_schema() -> None:
    code, out = invoke("tools", "--json")
    assert code == 0
    specs = {s["function"]["name"]: s["function"] for s in json.loads(out)}
    assert set(specs) == set(BUILTIN)
    assert specs["python"]["parameters"]["required"] == ["code"]
    code, out = invoke("tools")
    assert code == 0 and all(f"{name}:" in out for name in BUILTIN)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "hi", "--tools", "calculator,shell"], "unknown tool 'shell'"),
        (["run", "hi", "--loop", "circle"], "loop='circle'"),
        (["run", "hi", "colour=red"], "unknown key 'colour'"),
        (["run", "hi", "--kb", "no/such/folder"], "knowledge base folder"),
        (["run", "hi", "--kb", "nosuchkb"], "no knowledge base 'nosuchkb'"),
        (["run", "hi", "--tools", "kb_search"], "the kb_search tool needs kbs"),
        (["run", str(CONFIGS / "doc-helper.yaml")], "no task given"),
        (
            ["run", "--config", str(CONFIGS / "doc-helper.yaml"), str(CONFIGS / "calc-helper.yaml"), "hi"],
            "two",
        ),
        (["run", "missing.yaml", "hi"], "no such config file"),
    ],
)
def test_bad_input_is_one_clear_error(args: list[str], needle: str) -> None:
    code, out = invoke(*args)
    assert code == 2 and needle in out, out


def test_a_tool_schema_that_is_not_json_schema(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "name: bad\ntools:\n  - name: lookup\n    description: Look up.\n"
        "    parameters: {type: object, properties: {q: {type: strin}}}\n    python: 'print(args)'\n"
    )
    code, out = invoke("run", str(cfg), "hi")
    assert code == 2 and "lookup" in out and "schema" in out, out


def test_the_command_line_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "llmworks.cli", "agent", "run", "hi", "--tools", "shell"],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        cwd=tmp_path,
        timeout=300,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "unknown tool 'shell'" in lines[0]


def test_run_shows_steps_writes_the_trajectory_and_saves_its_config(tiny_gguf: Path, tmp_path: Path) -> None:
    """The whole command on the tiny random model (fast; constrained, so its calls parse): the answer alone
    on stdout, the trajectory in the training format, and the saved config that repeats the run."""
    out = tmp_path / "out"
    args = ["agent", "run", "What is 2+2?", "--model", str(tiny_gguf), "max_steps=1", "step_tokens=32"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "llmworks.cli", *args, "-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "agent agent · loop tools · tools calculator" in r.stderr and "model calls" in r.stderr
    (line,) = (out / "trajectories.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["messages"][-1]["content"] == r.stdout.strip()
    assert [t["function"]["name"] for t in record["tools"]] == ["calculator"]
    saved = (out / "config.yaml").read_text()
    assert saved.startswith(f"# llmworks agent run --config {out / 'config.yaml'}")
    from llmworks.agent.config import AgentConfig

    cfg = AgentConfig.resolve(out / "config.yaml")
    assert (cfg.max_steps, cfg.step_tokens, cfg.model) == (1, 32, str(tiny_gguf))


def test_chat_keeps_the_conversation_until_an_empty_line(tiny_gguf: Path, tmp_path: Path) -> None:
    """Two turns on the tiny model, in process: each turn a run of its own, the second one given the first
    turn as history (its trajectory holds both turns)."""
    out = tmp_path / "out"
    r = CliRunner().invoke(
        app,
        ["agent", "chat", "--model", str(tiny_gguf), "max_steps=1", "step_tokens=24", "-o", str(out)],
        input="My name is Ada.\nWhat is my name?\n\n",
    )
    assert r.exit_code == 0, r.output
    first, second = (json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines())
    users = [m["content"] for m in second["messages"] if m["role"] == "user"]
    assert users[:2] == ["My name is Ada.", "What is my name?"]  # then the forced answer's demand
    assert first["messages"][-1]["content"] in [m["content"] for m in second["messages"]]
