"""EvalConfig on the config mechanism: YAML, key=value, flags; every problem at once; the saved config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llmworks.config import ConfigError
from llmworks.eval.config import EvalConfig


def test_yaml_then_overrides_then_flags(tmp_path: Path) -> None:
    f = tmp_path / "eval.yaml"
    f.write_text("tasks: [mmlu-smoke, arc-smoke]\nlimit: 5\nmethod: generate\nshots: 2\n")
    cfg = EvalConfig.resolve(f, ["limit=7", "tasks=arc,hellaswag=data/hs.jsonl"], shots=None, chat=True)
    assert cfg.tasks == ["arc", "hellaswag=data/hs.jsonl"] and cfg.limit == 7
    assert cfg.method == "generate" and cfg.shots == 2 and cfg.chat is True
    assert EvalConfig.resolve(None, [], tasks="smoke").tasks == ["smoke"]  # --tasks a,b


def test_every_problem_in_one_error() -> None:
    with pytest.raises(ConfigError) as e:
        EvalConfig.resolve(None, ["limit=0", "colour=red", "method=guess"])
    text = str(e.value)
    for part in ("unknown key 'colour'", "limit=", "method=", "Known keys:"):
        assert part in text, part
    with pytest.raises(ConfigError, match="no tasks given"):
        EvalConfig.resolve(None, [])


def test_saved_config_masks_the_key_and_reloads(tmp_path: Path) -> None:
    cfg = EvalConfig(tasks=["mmlu-smoke"], base_url="http://127.0.0.1:1/v1", api_key="sk-secret")
    path = cfg.save(tmp_path / "config.yaml", "llmworks eval run --config config.yaml")
    text = path.read_text()
    assert "sk-secret" not in text and text.startswith("# llmworks eval run")
    again = EvalConfig.build(yaml.safe_load(text) | {"api_key": "sk-secret"})
    assert again == cfg


def test_cli_bad_config_is_one_line() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "llmworks.cli", "eval", "run", "--tasks", "mmlu-smoke", "limit=-3", "nope=1"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "unknown key 'nope'" in r.stderr and "limit=" in r.stderr
