"""int8 (torchao) and int4 (bitsandbytes NF4) for the transformers engine: saved, reloaded, measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from llmworks.engines import SamplingParams, load_engine
from llmworks.errors import MissingExtra, UserError
from llmworks.export import quantize

from .conftest import assert_one_line_error, cli

QUIET = Console(stderr=True, quiet=True)


def test_int8_saves_reloads_and_reports(merged: Path, tmp_path: Path) -> None:
    out = tmp_path / "int8"
    report = quantize(merged, "int8", out, console=QUIET)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["quantization_config"]["quant_method"] == "torchao"
    saved = json.loads((out / "report.json").read_text())
    assert saved["method"] == "int8" and saved["size_bytes"] < saved["source_size_bytes"]
    assert report.measurements[1].greedy_agreement is not None and "int8" in (out / "README.md").read_text()
    with load_engine(out, "transformers") as eng:
        assert type(eng.model.model.layers[0].mlp.up_proj.weight).__name__ == "Int8Tensor"
        text, _ = eng.complete(
            eng.template.render([{"role": "user", "content": "Hi"}]), SamplingParams(max_tokens=4)
        )
        assert text
    r = cli("chat", str(out), "--engine", "transformers", "-n", "4", stdin="hello\n/exit\n")
    assert r.returncode == 0 and r.stderr.count("finish:") == 1, r.stderr


def test_int4_packs_weights(merged: Path, tmp_path: Path) -> None:
    try:
        quantize(merged, "int4", tmp_path / "int4", evaluate=False, console=QUIET)
    except MissingExtra:
        pytest.skip("bitsandbytes not installed")
    with load_engine(tmp_path / "int4", "transformers") as eng:
        assert type(eng.model.model.layers[0].mlp.up_proj).__name__ == "Linear4bit"


def test_bad_input(merged: Path, tmp_path: Path) -> None:
    assert_one_line_error(
        cli("export", "quant", str(merged), "-m", "int3", "-o", str(tmp_path / "q")), "int8, int4"
    )
    quantize(merged, "int8", tmp_path / "int8", evaluate=False, console=QUIET)
    with pytest.raises(UserError, match="already quantized"):
        quantize(tmp_path / "int8", "int8", tmp_path / "again", console=QUIET)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8"]
