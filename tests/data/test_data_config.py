"""`llmworks data CMD ARGS [--config FILE] [key=value ...] [--flags]`: each command that writes data saves its
resolved config beside the output (OUTPUT.config.yaml, DIR/config.yaml), and `--config` repeats the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from data_testing import read_jsonl, run_cli, write_jsonl

from llmworks.data.config import AnnotateConfig, CleanConfig, ConvertConfig, MixConfig, SelfcogConfig

ROOT = Path(__file__).parents[2]


def llmworks(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmworks.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,  # the shipped configs name their files relative to the repository
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )


def test_mix_from_the_shipped_config_and_again_from_the_saved_one(tmp_path: Path) -> None:
    out = tmp_path / "mixed"
    r = llmworks(
        "data", "mix", "--config", "configs/data/mix-code-tools.yaml", f"output={out}", "--seed", "7"
    )
    assert r.returncode == 0, r.stderr
    saved = out / "config.yaml"
    assert saved.read_text().splitlines()[0] == f"# llmworks data mix --config {saved}"
    cfg = MixConfig.resolve(saved)
    assert (cfg.output, cfg.seed, cfg.val, len(cfg.specs)) == (out, 7, 0.1, 3)  # flag, YAML, YAML
    assert sorted(p.name for p in out.iterdir()) == [
        "config.yaml",
        "manifest.json",
        "train.jsonl",
        "val.jsonl",
    ]

    again = tmp_path / "again"
    r = llmworks("data", "mix", "--config", str(saved), f"output={again}")
    assert r.returncode == 0, r.stderr
    first, second = (json.loads((d / "manifest.json").read_text()) for d in (out, again))
    assert first["outputs"] == second["outputs"]  # the same records in the same order
    assert MixConfig.resolve(again / "config.yaml") == cfg.model_copy(update={"output": again})


def test_clean_yaml_then_overrides_then_flags(tmp_path: Path) -> None:
    src = write_jsonl(
        tmp_path / "in.jsonl", [{"text": f"record number {i} is long enough"} for i in range(5)]
    )
    yml = tmp_path / "clean.yaml"
    yml.write_text(f"src: {src}\nmin_chars: 3\nmax_chars: 500\nlanguages: [en]\nnear_dedupe: true\n")
    out = tmp_path / "out.jsonl"
    r = run_cli("clean", "--config", yml, "-o", out, "min_chars=5", "max_chars=400", "--max-chars", "300",
                "--no-near", "--lang", "en,zh")  # fmt: skip
    assert r.exit_code == 0, r.output + r.error
    cfg = CleanConfig.resolve(tmp_path / "out.jsonl.config.yaml")
    assert (cfg.src, cfg.output, cfg.min_chars, cfg.max_chars) == (src, out, 5, 300)
    assert (cfg.languages, cfg.near_dedupe, cfg.exact_dedupe) == (["en", "zh"], False, True)
    assert len(read_jsonl(out)) == 5


def test_single_file_outputs_save_their_config(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "a.jsonl", [{"instruction": "Say hi", "input": "", "output": "Hi"}])
    assert run_cli("convert", src, "-o", tmp_path / "m.jsonl").exit_code == 0
    assert ConvertConfig.resolve(tmp_path / "m.jsonl.config.yaml") == ConvertConfig(
        src=src, output=tmp_path / "m.jsonl"
    )
    out = tmp_path / "self.jsonl"
    r = run_cli("synth", "selfcog", "--name", "Lumen", "--author", "us", "-o", out, "languages=en")
    assert r.exit_code == 0, r.error
    assert SelfcogConfig.resolve(Path(f"{out}.config.yaml")).languages == ["en"]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (
            ["clean", "in.jsonl", "minchars=3", "--max-chars", "-1"],
            ["unknown key 'minchars'", "max_chars=-1"],
        ),
        (["mix", "-o", "d"], ["specs is not set"]),
        (["stats", "a.jsonl", "b.jsonl"], ["tokenizer is not set", "one data file expected, got 2"]),
        (["convert", "a.jsonl", "b.jsonl", "-o", "o"], ["one SRC expected, got 2"]),
    ],
)
def test_config_errors_name_every_problem(tmp_path: Path, args: list[str], needles: list[str]) -> None:
    r = run_cli(*args)
    assert r.exit_code == 2
    for needle in needles:
        assert needle in r.error, r.error
    assert not any(tmp_path.iterdir())


def test_annotate_saves_its_config_in_its_output_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmworks.data.annotate import server

    served = []
    monkeypatch.setattr(server, "serve", lambda *a: served.append(a))
    src = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "Hi", "responses": ["a", "b"]}])
    assert run_cli("annotate", src, "port=8123").exit_code == 0
    saved = tmp_path / "pairs.jsonl.annotations" / "config.yaml"
    assert served == [(src, saved.parent, "127.0.0.1", 8123)]
    assert AnnotateConfig.resolve(saved) == AnnotateConfig(src=src, output_dir=saved.parent, port=8123)
    assert run_cli("annotate", tmp_path / "none.jsonl").exit_code == 2
    assert not (tmp_path / "none.jsonl.annotations").exists()
