"""One config mechanism for every stage: every shipped YAML loads into its command's config, every config
class reports all unknown keys at once, names a bad value and re-loads what it saved, and the command line
(`ARGS [--config FILE] [key=value ...] [--flags]`) fills them in that order of precedence."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from llmworks.agent.config import AgentConfig
from llmworks.cli import app
from llmworks.config import StageConfig
from llmworks.config_cli import ConfigFile, arguments, from_cli, option, split_args
from llmworks.data import config as data
from llmworks.errors import UserError
from llmworks.eval.config import EvalConfig
from llmworks.export import config as export
from llmworks.rag import config as rag
from llmworks.serve.config import ServeConfig
from llmworks.train.config import DPOConfig, PretrainConfig, SFTConfig

CONFIGS = Path(__file__).parents[1] / "configs"

# command -> (its config class, the smallest valid values, (a key, a bad value for it, what the error says))
COMMANDS: dict[str, tuple[type[StageConfig], dict[str, Any], tuple[str, Any, str]]] = {
    "train sft": (SFTConfig, {"data": ["a.jsonl"]}, ("lr", "fast", "lr='fast'")),
    "train dpo": (DPOConfig, {"data": ["a.jsonl"]}, ("beta", 0, "beta=0")),
    "train pretrain": (PretrainConfig, {"data": ["a.txt"]}, ("batch_size", 0, "batch_size=0")),
    "serve": (ServeConfig, {}, ("port", "http", "port='http'")),
    "agent run": (AgentConfig, {}, ("loop", "circle", "loop='circle'")),
    "agent chat": (AgentConfig, {"tools": ["python"]}, ("tools", ["shell"], "unknown tool 'shell'")),
    "eval run": (EvalConfig, {"tasks": ["smoke"]}, ("method", "guess", "method='guess'")),
    "export merge": (export.MergeConfig, {"run_dir": "run", "output": "m"}, ("threads", 0, "threads=0")),
    "export gguf": (export.GGUFConfig, {"output": "m.gguf"}, ("quant", "q9", "quant='q9'")),
    "export quant": (export.QuantConfig, {"output": "q"}, ("method", "int3", "method='int3'")),
    "export card": (
        export.CardConfig,
        {"model": "m.gguf", "evals": ["run"]},
        ("evals", [], "no evaluation runs"),
    ),
    "data parse": (
        data.ParseConfig,
        {"paths": ["d"], "output": "o.jsonl"},
        ("engine", "ocr", "engine='ocr'"),
    ),
    "data convert": (data.ConvertConfig, {"src": "a", "output": "o.jsonl"}, ("to", "xml", "to='xml'")),
    "data clean": (data.CleanConfig, {"src": "a", "output": "o"}, ("near_threshold", 2, "near_threshold=2")),
    "data stats": (data.StatsConfig, {"files": ["a"], "tokenizer": "t"}, ("max_length", 0, "max_length=0")),
    "data mix": (data.MixConfig, {"specs": ["a#3"], "output": "d"}, ("val", -1, "val=-1")),
    "data annotate": (data.AnnotateConfig, {"src": "a"}, ("port", 70000, "port=70000")),
    "data demo": (data.DemoConfig, {"output": "d"}, ("seed", "x", "seed='x'")),
    "data synth selfcog": (
        data.SelfcogConfig,
        {"name": "N", "author": "A", "output": "o"},
        ("per_question", 0, "per_question=0"),
    ),
    "data synth self-instruct": (
        data.SelfInstructConfig,
        {"seeds": "s", "output": "o"},
        ("max_rouge", 0, "max_rouge=0"),
    ),
    "data synth pairs": (data.PairsConfig, {"prompts": "p", "output": "o"}, ("k", 1, "k=1")),
    "data synth tool-calls": (data.ToolCallsConfig, {"output": "o.jsonl"}, ("n", 0, "n=0")),
    "rag ingest": (rag.IngestConfig, {"paths": ["d"], "kb": "m"}, ("chunk_tokens", 8, "chunk_tokens=8")),
    "rag search": (rag.SearchConfig, {"query": "q", "kb": ["m"]}, ("mode", "fuzzy", "mode='fuzzy'")),
    "rag ask": (rag.AskConfig, {"query": "q", "kb": ["m"]}, ("k", 0, "k=0")),
    "rag eval": (rag.RagEvalConfig, {"qa": "qa.jsonl", "kb": ["m"]}, ("rrf_k", -1, "rrf_k=-1")),
    "rag synth": (rag.SynthConfig, {"kb": "m"}, ("n", "many", "n='many'")),
    "rag calibrate": (
        rag.CalibrateConfig,
        {"kb": ["m"], "in_scope": "a", "out_of_scope": "b"},
        ("target", "recall", "target='recall'"),
    ),
}


def shipped() -> list[Path]:
    """Every YAML under configs/, at any depth; configs/accelerate/ holds accelerate's launcher files
    (tests/train/test_distributed.py)."""
    return sorted(p for p in CONFIGS.rglob("*.yaml") if "accelerate" not in p.relative_to(CONFIGS).parts)


def command_of(path: Path) -> str:
    """The command on the first line, `# llmworks STAGE [CMD] ...` (as every saved config starts too)."""
    words = path.read_text(encoding="utf-8").splitlines()[0].split()
    assert words[:2] == ["#", "llmworks"], f"{path}: the first line must be the command that runs it"
    for n in (3, 2, 1):
        if " ".join(words[2 : 2 + n]) in COMMANDS:
            return " ".join(words[2 : 2 + n])
    raise AssertionError(f"{path}: no config class for `{' '.join(words[1:])}`")


@pytest.mark.parametrize("path", shipped(), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_shipped_config_loads_into_its_command(path: Path) -> None:
    cls = COMMANDS[command_of(path)][0]
    cfg = cls.resolve(path)
    assert set(yaml.safe_load(path.read_text())) <= set(cls.model_fields)
    assert f"configs/{path.relative_to(CONFIGS)}" in path.read_text().splitlines()[0]  # the command runs it
    assert cfg == cls.resolve(path)


def test_there_are_shipped_configs_for_every_stage() -> None:
    stages = {command_of(p).split()[0] for p in shipped()}
    assert {"train", "serve", "export", "data", "agent", "rag"} <= stages


def test_every_command_with_a_config_is_in_the_table() -> None:
    """A command that takes --config has an entry above, so its class gets the checks below."""
    found = []

    def walk(cmd: Any, prefix: list[str]) -> None:
        if any("--config" in p.opts for p in getattr(cmd, "params", [])):
            found.append(" ".join(prefix))
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*prefix, name])

    walk(typer.main.get_command(app), [])
    missing = sorted(set(found) - set(COMMANDS))
    assert not missing, f"add these commands to COMMANDS: {missing}"
    assert set(COMMANDS) <= set(found)


@pytest.mark.parametrize("command", COMMANDS)
def test_unknown_keys_all_at_once_and_a_bad_value_named(command: str) -> None:
    cls, minimal, (key, bad, needle) = COMMANDS[command]
    with pytest.raises(UserError) as e:
        cls.build({**minimal, "colour": 1, "sizee": 2})
    assert "unknown key 'colour'; unknown key 'sizee'" in e.value.problem
    assert "Known keys:" in e.value.fix and key in e.value.fix
    with pytest.raises(UserError) as e:
        cls.build({**minimal, key: bad})
    assert needle in e.value.problem, e.value.problem


@pytest.mark.parametrize("command", COMMANDS)
def test_saved_config_reloads_equal(command: str, tmp_path: Path) -> None:
    cls, minimal, _ = COMMANDS[command]
    cfg = cls.build(minimal)
    path = tmp_path / "sub" / "config.yaml"
    cfg.save(path, f"llmworks {command} --config {path}", secret=())
    assert path.read_text().startswith(f"# llmworks {command} --config {path}\n")
    assert cls.resolve(path) == cfg
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]  # written whole, no temp file left


def test_api_key_is_masked_when_saved(tmp_path: Path) -> None:
    ServeConfig(api_key="s3cret").save(tmp_path / "serve.yaml", "llmworks serve")
    assert "s3cret" not in (tmp_path / "serve.yaml").read_text()
    assert ServeConfig.resolve(tmp_path / "serve.yaml").api_key == "***"


# -- the command line --------------------------------------------------------------------------------


def test_split_args_keeps_paths_and_takes_plain_keys() -> None:
    words, overrides = split_args(["a.jsonl", "lr=1e-4", "dir/x=y.jsonl", "data.jsonl#5", "k=a=b"])
    assert words == ["a.jsonl", "dir/x=y.jsonl", "data.jsonl#5"] and overrides == ["lr=1e-4", "k=a=b"]


def test_defaults_then_yaml_then_overrides_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text("port: 9000\nctx: 4096\nparallel: 2\nmodels: [a.gguf]\nlora: [x=runs/x]\n")
    cfg = from_cli(
        ServeConfig, path, ["ctx=1024", "parallel=3", "lora=y=runs/y,z=runs/z"], "models", parallel=5
    )
    assert (cfg.port, cfg.ctx, cfg.parallel, cfg.models) == (9000, 1024, 5, ["a.gguf"])
    assert cfg.lora == ["y=runs/y", "z=runs/z"] and cfg.max_queue == 64  # the default stays
    # positional arguments are flags too; a flag left out (None) keeps the YAML's value
    cfg = from_cli(ServeConfig, path, ["b.gguf", "c.gguf"], "models", port=None, ctx=None)
    assert (cfg.models, cfg.port) == (["b.gguf", "c.gguf"], 9000)


def test_a_comma_separated_flag_fills_a_list() -> None:
    cfg = from_cli(data.CleanConfig, None, ["in.jsonl", "output=o.jsonl"], "src", languages="en, zh")
    assert cfg.languages == ["en", "zh"] and cfg.src == Path("in.jsonl")


def test_one_positional_for_a_scalar_field() -> None:
    with pytest.raises(UserError, match="one SRC expected, got 2"):
        from_cli(data.CleanConfig, None, ["a.jsonl", "b.jsonl", "output=o"], "src")
    with pytest.raises(UserError, match=r"unexpected argument 'x\.jsonl'"):
        from_cli(data.DemoConfig, None, ["x.jsonl"])


class Cfg(StageConfig):
    size: int = 3
    """How big."""
    exact: bool = True
    """Drop exact duplicates."""


def test_flags_are_declared_from_the_config() -> None:
    """Help text and shown default come from the field, and the flag overrides --config."""
    demo = typer.Typer()
    seen: list[Cfg] = []

    @demo.command()
    def run(
        args: Annotated[list[str] | None, arguments(Cfg)] = None,
        config: ConfigFile = None,
        size: Annotated[int | None, option(Cfg, "size")] = None,
        exact: Annotated[bool | None, option(Cfg, "exact", "--dedupe/--no-dedupe")] = None,
    ) -> None:
        seen.append(from_cli(Cfg, config, args, size=size, exact=exact))

    runner = CliRunner()
    helps = {p.name: getattr(p, "help", None) for p in typer.main.get_command(demo).params}
    assert helps["size"] == "How big. (default: 3)"
    assert helps["exact"] == "Drop exact duplicates. (default: --dedupe; config key: exact)"
    assert runner.invoke(demo, ["size=7"]).exit_code == 0 and seen[-1] == Cfg(size=7)
    assert runner.invoke(demo, ["size=7", "--size", "9", "--no-dedupe"]).exit_code == 0
    assert seen[-1] == Cfg(size=9, exact=False)


def test_train_takes_the_recipe_as_argument_or_config(tmp_path: Path) -> None:
    from llmworks.train.cli import _config

    recipe = CONFIGS / "demo-sft.yaml"
    assert _config(SFTConfig, None, [str(recipe), "lr=5e-4"]) == _config(SFTConfig, recipe, ["lr=5e-4"])
    assert _config(SFTConfig, recipe, ["lr=5e-4"]).lr == 5e-4
    with pytest.raises(UserError, match="one recipe expected"):
        _config(SFTConfig, recipe, [str(recipe)])


def test_declaring_flags_from_configs_keeps_the_cli_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, llmworks.cli; print(sorted({'torch', 'transformers', 'llama_cpp'} & set(sys.modules)))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr
