"""`llmworks train sft|dpo|pretrain [RECIPE.yaml | --config RECIPE.yaml] [key=value ...]`: a YAML recipe, then
overrides (the convention of every stage: `llmworks.config_cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from llmworks.config_cli import ConfigFile, split_args
from llmworks.errors import UserError

if TYPE_CHECKING:
    from llmworks.train.config import TrainConfig

C = TypeVar("C", bound="TrainConfig")

app = typer.Typer(
    help="Fine-tune: SFT (LoRA, DoRA, QLoRA, full, freeze), DPO, continued pre-training.",
    no_args_is_help=True,
    add_completion=False,
)

Args = Annotated[
    list[str] | None,
    typer.Argument(
        help="An optional YAML recipe first (or --config), then key=value overrides (e.g. lr=1e-4 max_steps=50).",
        metavar="ARGS",
        show_default=False,
    ),
]


@app.command()
def sft(args: Args = None, config: ConfigFile = None) -> None:
    """Supervised fine-tuning on chat data (messages, sharegpt or alpaca JSONL)."""
    from llmworks.train import sft as stage
    from llmworks.train.config import SFTConfig

    stage.main(_config(SFTConfig, config, args))


@app.command()
def dpo(args: Args = None, config: ConfigFile = None) -> None:
    """Direct preference optimisation on prompt/chosen/rejected JSONL."""
    from llmworks.train import dpo as stage
    from llmworks.train.config import DPOConfig

    stage.main(_config(DPOConfig, config, args))


@app.command()
def pretrain(args: Args = None, config: ConfigFile = None) -> None:
    """Continued pre-training on plain text (.txt paragraphs or JSONL with a text field), packed."""
    from llmworks.train import pretrain as stage
    from llmworks.train.config import PretrainConfig

    stage.main(_config(PretrainConfig, config, args))


def _config(cls: type[C], config: Path | None, args: list[str] | None) -> C:
    """The recipe is `--config FILE` or the first argument that is not a key=value override."""
    from llmworks.train.config import load_config

    words, overrides = split_args(args)
    if len(words) > 1 or (words and config is not None):
        raise UserError(
            f"one recipe expected, got {', '.join([*map(str, [config] if config else []), *words])}.",
            "Give one YAML recipe (as the first argument or --config), then key=value overrides.",
        )
    return load_config(cls, config or (words[0] if words else None), overrides)  # type: ignore[return-value]
