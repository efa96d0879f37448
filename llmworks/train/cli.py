"""`llmworks train sft|dpo|pretrain [CONFIG.yaml] [key=value ...]`: a YAML recipe, then overrides."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

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
        help="An optional YAML recipe first, then key=value overrides (e.g. lr=1e-4 max_steps=50)."
    ),
]


@app.command()
def sft(args: Args = None) -> None:
    """Supervised fine-tuning on chat data (messages, sharegpt or alpaca JSONL)."""
    from llmworks.train import sft as stage
    from llmworks.train.config import SFTConfig

    stage.main(_config(SFTConfig, args or []))


@app.command()
def dpo(args: Args = None) -> None:
    """Direct preference optimisation on prompt/chosen/rejected JSONL."""
    from llmworks.train import dpo as stage
    from llmworks.train.config import DPOConfig

    stage.main(_config(DPOConfig, args or []))


@app.command()
def pretrain(args: Args = None) -> None:
    """Continued pre-training on plain text (.txt paragraphs or JSONL with a text field), packed."""
    from llmworks.train import pretrain as stage
    from llmworks.train.config import PretrainConfig

    stage.main(_config(PretrainConfig, args or []))


def _config(cls: type[C], args: list[str]) -> C:
    """The first argument is a recipe unless it is a key=value override."""
    from llmworks.train.config import load_config

    path = args[0] if args and "=" not in args[0] else None
    return load_config(cls, path, args[1:] if path else args)  # type: ignore[return-value]
