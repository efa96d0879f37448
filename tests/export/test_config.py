"""Every export saves the config that made it (FILE.gguf.config.yaml, DIR/export_config.yaml), and
`--config THAT_FILE` repeats it; the shipped export config runs with overrides."""

from __future__ import annotations

from pathlib import Path

import yaml

from llmworks.export.config import DIR_CONFIG, GGUFConfig, MergeConfig

from .conftest import assert_one_line_error, cli

CONFIGS = Path(__file__).parents[2] / "configs"


def test_gguf_from_the_shipped_config_saves_its_config_and_repeats(merged: Path, tmp_path: Path) -> None:
    shipped = CONFIGS / "export" / "gguf-q4_k_m.yaml"
    out = tmp_path / "m.gguf"
    # YAML (quant q4_k_m), then key=value (model, output), then a flag (--quant q8_0) and --no-eval
    r = cli(
        "export",
        "gguf",
        "--config",
        str(shipped),
        f"model={merged}",
        f"output={out}",
        "-q",
        "q8_0",
        "--no-eval",
    )
    assert r.returncode == 0, r.stderr
    saved = tmp_path / "m.gguf.config.yaml"
    assert saved.read_text().splitlines()[0] == f"# llmworks export gguf --config {saved}"
    cfg = GGUFConfig.resolve(saved)
    assert cfg == GGUFConfig(model=str(merged), output=out, quant="q8_0", eval=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "m.gguf",
        "m.gguf.config.yaml",
        "m.gguf.md",
        "m.gguf.report.json",
    ]

    again = tmp_path / "again" / "m.gguf"
    r = cli("export", "gguf", "--config", str(saved), f"output={again}")
    assert r.returncode == 0, r.stderr
    assert GGUFConfig.resolve(Path(f"{again}.config.yaml")) == cfg.model_copy(update={"output": again})
    assert again.read_bytes() == out.read_bytes()  # the same export, repeated


def test_merge_dir_holds_its_config_beside_the_report(merged: Path, lora_run: Path) -> None:
    saved = merged / DIR_CONFIG
    assert (merged / "report.json").is_file() and (merged / "train_config.yaml").is_file()
    cfg = MergeConfig.resolve(saved)
    assert (cfg.run_dir, cfg.output, cfg.eval) == (lora_run, merged, False)
    assert yaml.safe_load(saved.read_text()) == cfg.model_dump(mode="json")


def test_bad_export_config_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "quant.yaml"
    bad.write_text("method: int3\nouput: q\n")
    assert_one_line_error(
        cli("export", "quant", "--config", str(bad)),
        "bad QuantConfig config",
        "unknown key 'ouput'",
        "method='int3' (choose one of int8, int4)",
    )
    assert [p.name for p in tmp_path.iterdir()] == ["quant.yaml"]
