"""Every command's config on the command line: `llmworks STAGE CMD [ARGS ...] [--config FILE] [key=value ...]
[--flags]`, all filling the command's `StageConfig` (defaults < `--config` YAML < `key=value` < flags).

A command declares each flag from its config field (`option(Cfg, "port")`): the help text is the field's
docstring followed by the field's default, so there is no second list of defaults. A flag's
Python default is None, which `StageConfig.resolve` reads as "not given" (the YAML's value stays).

Positional arguments and `key=value` overrides share one variadic argument (click has one): a word
`key=value` whose key is a plain name (letters, digits, `_`) is an override; anything else is positional
(write a path that looks like `a=b` as `./a=b`).

    @app.command()
    def clean(args: Annotated[list[str] | None, arguments(CleanConfig, "src")] = None, config: ConfigFile = None,
              min_chars: Annotated[int | None, option(CleanConfig, "min_chars")] = None) -> None:
        cfg = from_cli(CleanConfig, config, args, positional="src", min_chars=min_chars)
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from llmworks.config import StageConfig, _is_list
from llmworks.errors import UserError

__all__ = ["ConfigFile", "arguments", "from_cli", "option", "save_beside", "split_args"]

C = TypeVar("C", bound=StageConfig)

_OVERRIDE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")

ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="A YAML file of this command's config keys (as saved with its outputs); key=value and flags override it.",
        show_default=False,
    ),
]
"""The `--config FILE` option every command takes."""


def arguments(cls: type[StageConfig], key: str | None = None) -> Any:
    """The variadic argument: the positional arguments (the field `key`; help from it), then `key=value`
    overrides. Declare the parameter `args: Annotated[list[str] | None, arguments(Cfg, "src")] = None`."""
    what = f"{cls.help_for(key)} Then key=value" if key else "key=value"
    metavar = "ARGS" if key else "KEY=VALUE"
    return typer.Argument(help=f"{what} overrides of any config key.", show_default=False, metavar=metavar)


def option(cls: type[StageConfig], key: str, *decls: str, **kwargs: Any) -> Any:
    """A Typer option for the field `key` of `cls`: `--key` (`--key/--no-key` for a bool) unless `decls`
    are given; help and shown default from the field. Declare the parameter `T | None = None`."""
    field = cls.model_fields[key]
    flag = key.replace("_", "-")
    if not decls:
        decls = (f"--{flag}/--no-{flag}",) if field.annotation is bool else (f"--{flag}",)
    shown = _shown(field, decls)
    names = {n.strip().lstrip("-") for d in decls for n in d.split("/")}
    notes = [f"default: {shown}" if shown else "", "" if flag in names else f"config key: {key}"]
    notes = [n for n in notes if n]
    help = cls.help_for(key) + (f" ({'; '.join(notes)})" if notes else "")
    return typer.Option(*decls, help=help, show_default=False, **kwargs)


def split_args(args: list[str] | None) -> tuple[list[str], list[str]]:
    """(positional arguments, `key=value` overrides) in their given order."""
    positional, overrides = [], []
    for a in args or []:
        (overrides if _OVERRIDE.match(a) else positional).append(a)
    return positional, overrides


def from_cli(
    cls: type[C],
    config: Path | None,
    args: list[str] | None,
    positional: str | None = None,
    **flags: Any,
) -> C:
    """The command's config: defaults, the YAML `config`, the overrides in `args`, then `flags` and the
    positional arguments (into the field `positional`; a list field takes them all, any other field one)."""
    words, overrides = split_args(args)
    if words:
        if positional is None:
            raise UserError(
                f"unexpected argument {words[0]!r}.", "This command takes only key=value overrides and flags."
            )
        if _is_list(cls.model_fields[positional].annotation):
            flags[positional] = words
        elif len(words) > 1:
            raise UserError(
                f"one {positional.upper()} expected, got {len(words)}: {' '.join(words)}.",
                "Give one, or write overrides as key=value.",
            )
        else:
            flags[positional] = words[0]
    for key, value in flags.items():  # `--lang en,zh`: a comma-separated flag for a list field
        if isinstance(value, str) and key in cls.model_fields and _is_list(cls.model_fields[key].annotation):
            flags[key] = [v.strip() for v in value.split(",") if v.strip()]
    return cls.resolve(config, overrides, **{k: v for k, v in flags.items() if v != []})


def save_beside(cfg: StageConfig, path: Path, command: str) -> Path:
    """Save `cfg` at `path` (atomically), headed by the command that repeats the run from it."""
    return cfg.save(path, f"{command} --config {path}")


def _shown(field: Any, decls: tuple[str, ...]) -> str:
    """The default as the help text shows it: `8000`, `a,b`, the flag of a bool (`--eval`); empty = none."""
    default = field.get_default(call_default_factory=True)
    if default is None or default == [] or default == "":
        return ""
    if isinstance(default, bool):
        names = decls[0].split("/")
        return names[0 if default else 1].strip() if len(names) == 2 else ""
    if typing.get_origin(field.annotation) is list or isinstance(default, list):
        return ",".join(map(str, default))
    return str(default)
