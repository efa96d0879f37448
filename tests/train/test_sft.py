"""SFT on the tiny model: outputs, methods, exact resume after Ctrl-C, and the errors a user can cause."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from llmworks.engines import load_engine
from llmworks.errors import MissingExtra, UserError
from llmworks.models.sources import resolve
from llmworks.train import sft
from llmworks.train.config import SFTConfig

from .conftest import write_jsonl


def losses(out: Path) -> list[float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def test_lora_run_writes_a_self_describing_dir_that_chat_can_load(make_cfg, chat_data, quiet) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg(
        data=[str(chat_data)], max_steps=3, val_ratio=0.25, check_after=True, eval_before_after=True
    )
    s = sft.main(cfg, quiet)
    out = Path(cfg.output_dir)
    for name in (
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
        "chat_template.jinja",
        "config.yaml",
        "metrics.jsonl",
        "loss.png",
        "README.md",
        "summary.json",
    ):
        assert (out / name).is_file(), name
    assert len(losses(out)) == 3 and s.eval_loss is not None
    assert s.general_ppl_before and s.general_ppl_after and s.check_ok is not None
    assert set(s.guard) == {"general-smoke/contains"}  # the eval stage's guard task, before and after
    assert (out / "guard" / "compare.html").is_file() and (out / "guard" / "after" / "results.json").is_file()
    base = json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert resolve(base).path == Path(cfg.model)
    src = resolve(out)
    assert src.adapter == out and src.kind == "hf"
    engine = load_engine(out)
    assert type(engine).__name__ == "TransformersEngine" and engine.template is not None
    card = (out / "README.md").read_text()
    assert "Method: lora" in card and "Stop-token check" in card and "General-text perplexity" in card
    assert "Forgetting guard, general-smoke/contains" in card


@pytest.mark.parametrize("method", ["dora", "full", "freeze", "qlora"])
def test_methods(method: str, make_cfg, chat_data, quiet) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg(data=[str(chat_data)], method=method, freeze_trainable_layers=1, lr=1e-3)
    try:
        s = sft.main(cfg, quiet)
    except MissingExtra:
        pytest.skip("bitsandbytes not installed")
    assert s.steps == 2 and s.train_loss == s.train_loss  # not NaN
    out = Path(cfg.output_dir)
    weights = "adapter_model.safetensors" if method in ("dora", "qlora") else "model.safetensors"
    assert (out / weights).is_file()
    if method in ("full", "freeze"):
        assert load_engine(out, "transformers").template is not None


def test_packing_trains_the_same_tokens(make_cfg, chat_data, quiet) -> None:  # type: ignore[no-untyped-def]
    s = sft.main(make_cfg(data=[str(chat_data)], packing=True, batch_size=1), quiet)
    assert s.data["target_tokens"] > 0 and s.steps == 2


def test_ctrl_c_checkpoints_and_resume_reproduces_the_loss_curve(
    make_cfg, chat_data, quiet, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    common = dict(data=[str(chat_data)], max_steps=6, lora_dropout=0.1, lr=5e-3)
    ref = sft.main(make_cfg(**common, output_dir=str(tmp_path / "ref")), quiet)

    def interrupt(step: int) -> None:
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    cut = make_cfg(**common, output_dir=str(tmp_path / "cut"))
    with pytest.raises(KeyboardInterrupt):
        sft.main(cut, quiet, on_step=interrupt)
    assert (tmp_path / "cut" / "checkpoints" / "step-0000003" / "state.pt").is_file()
    assert len(losses(tmp_path / "cut")) == 3
    resumed = sft.main(make_cfg(**common, output_dir=str(tmp_path / "cut"), resume=True), quiet)
    assert resumed.steps == ref.steps == 6
    assert losses(tmp_path / "cut") == pytest.approx(losses(tmp_path / "ref"), abs=1e-5)


# -- errors a user can cause ------------------------------------------------------------------------


def test_missing_data(make_cfg, tmp_path, quiet) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UserError, match="training data not found"):
        sft.main(make_cfg(data=[str(tmp_path / "nope.jsonl")]), quiet)


def test_empty_after_filtering(make_cfg, tmp_path, quiet) -> None:  # type: ignore[no-untyped-def]
    long = {"messages": [{"role": "user", "content": "word " * 400}, {"role": "assistant", "content": "ok"}]}
    path = write_jsonl(tmp_path / "long.jsonl", [long])
    with pytest.raises(UserError, match="no training samples left"):
        sft.main(make_cfg(data=[str(path)], max_seq_len=32), quiet)


def test_model_without_chat_template(make_cfg, chat_data, tiny_hf_dir, tmp_path, quiet) -> None:  # type: ignore[no-untyped-def]
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in tiny_hf_dir.iterdir():
        if f.name != "chat_template.jinja":
            text = f.read_bytes()
            if f.name == "tokenizer_config.json":
                cfg = json.loads(text)
                cfg.pop("chat_template", None)
                text = json.dumps(cfg).encode()
            (bare / f.name).write_bytes(text)
    with pytest.raises(UserError, match="no chat template"):
        sft.main(make_cfg(model=str(bare), data=[str(chat_data)]), quiet)


def test_unknown_target_module(make_cfg, chat_data, quiet) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UserError, match=r"unknown target module\(s\) qkv_proj.*q_proj"):
        sft.main(make_cfg(data=[str(chat_data)], target_modules=["q_proj", "qkv_proj"]), quiet)


def test_more_memory_than_the_machine_has(make_cfg, chat_data, quiet, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from llmworks.train import model as train_model

    monkeypatch.setattr(train_model, "memory_bytes", lambda: (2**30, 2**29))
    cfg = make_cfg(
        model="smollm2-135m-instruct", data=[str(chat_data)], method="full", batch_size=64, max_seq_len=2048
    )
    with pytest.raises(UserError, match=r"more than this machine's 1\.0 GiB"):
        sft.main(cfg, quiet)


def test_config_is_printed_and_saved(make_cfg, chat_data, quiet) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg(data=[str(chat_data)], max_steps=1)
    sft.main(cfg, quiet)
    from llmworks.train.config import load_config

    saved = load_config(SFTConfig, Path(cfg.output_dir) / "config.yaml", [])
    assert saved == cfg


def test_forgetting_guard_warns_past_the_threshold(make_cfg, chat_data) -> None:  # type: ignore[no-untyped-def]
    import io

    from rich.console import Console

    buf = io.StringIO()
    cfg = make_cfg(data=[str(chat_data)], max_steps=1, eval_before_after=True, forgetting_threshold=-1.0)
    s = sft.main(cfg, Console(file=buf, width=200))
    assert s.general_ppl_before is not None and s.general_ppl_after is not None
    text = buf.getvalue()
    assert "general-text perplexity rose" in text and "Mix general data in" in text
