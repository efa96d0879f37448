"""One config mechanism for every stage: a typed pydantic model per command.

Values resolve in this order: the model's defaults, then a YAML file (`--config FILE`, or a recipe given as
the first argument), then `key=value` overrides, then command-line flags. Unknown keys and bad values are
one `ConfigError` that lists every problem at once, before any model is loaded. The resolved config is
saved next to the outputs (`save`) so a run can be repeated, and shown as one short line (`summary`).

    class CleanConfig(StageConfig):
        min_chars: int = 20
        \"\"\"Drop records shorter than this.\"\"\"

    cfg = CleanConfig.resolve("clean.yaml", ["min_chars=50"], lang="en")
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from llmworks.atomic import atomic_write
from llmworks.errors import UserError

__all__ = ["ConfigError", "StageConfig", "parse_overrides"]


class ConfigError(UserError):
    """Every problem of a config at once."""

    def __init__(self, what: str, problems: Sequence[str], fix: str = "") -> None:
        self.problems = list(problems)
        super().__init__(f"bad {what}: {'; '.join(self.problems)}.", fix or "Fix these keys and run again.")


class StageConfig(BaseModel):
    """Base of every stage's config: unknown keys are errors; each field's docstring is its help text."""

    model_config = ConfigDict(
        extra="forbid", use_attribute_docstrings=True, validate_assignment=True, defer_build=True
    )

    @classmethod
    def resolve(
        cls,
        path: str | Path | None = None,
        overrides: Iterable[str] = (),
        **flags: Any,
    ) -> Self:
        """Defaults, then the YAML at `path`, then `key=value` overrides, then flags (None = not given)."""
        values: dict[str, Any] = {}
        if path is not None:
            values.update(read_yaml_mapping(Path(path)))
        values.update(parse_overrides(overrides, cls))
        values.update({k: v for k, v in flags.items() if v is not None})
        return cls.build(values)

    @classmethod
    def build(cls, values: Mapping[str, Any]) -> Self:
        """The config from plain values, or a ConfigError naming every bad key and value."""
        unknown = sorted(set(values) - set(cls.model_fields))
        problems = [f"unknown key {k!r}" for k in unknown]
        known = {k: v for k, v in values.items() if k in cls.model_fields}
        try:
            cfg = cls.model_validate(known)
        except ValidationError as e:
            problems += [_problem(err) for err in e.errors()]
            cfg = None
        if problems:
            hint = f"Known keys: {', '.join(cls.model_fields)}." if unknown else ""
            raise ConfigError(f"{cls.__name__} config", problems, hint) from None
        assert cfg is not None
        return cfg

    def problems(self) -> list[str]:
        """Cross-checks between fields, one line each (`key=value (why)`); a subclass extends its parent's
        list (`[*super().problems(), ...]`), so every problem of the hierarchy is reported at once."""
        return []

    @model_validator(mode="after")
    def _cross_checks(self) -> Self:
        found = self.problems()
        if found:
            raise ValueError("; ".join(found))
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

    def save(self, path: Path, command: str, secret: Sequence[str] = ("api_key",)) -> Path:
        """Write the resolved config as YAML (secrets masked), headed by the command that made it."""
        data = self.model_dump(mode="json")
        for key in secret:
            if data.get(key):
                data[key] = "***"
        body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        atomic_write(path, f"# {command}\n{body}")
        return path

    def summary(self, keys: Iterable[str]) -> str:
        """`key=value` for the settings worth showing at start (the rest is in the saved file)."""
        return " ".join(f"{k}={getattr(self, k)}" for k in keys)

    @classmethod
    def help_for(cls, key: str) -> str:
        """The field's docstring (its --help text)."""
        return (cls.model_fields[key].description or "").split("\n\n")[0].replace("\n", " ")


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"no such config file: {path}.", "Give a YAML file of key: value lines.")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise UserError(f"{path} is not valid YAML ({e}).", "Fix the file.") from None
    if not isinstance(loaded, dict):
        raise UserError(f"{path} is not a YAML mapping of config keys.", "Write one `key: value` per line.")
    return loaded


def parse_overrides(items: Iterable[str], cls: type[StageConfig] | None = None) -> dict[str, Any]:
    """`key=value` strings to values: YAML syntax for lists and maps (`data=[a.jsonl, b.jsonl]`), and a
    comma-separated string for a list field (`data=a.jsonl,b.jsonl`); pydantic converts the rest."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(
                f"override {item!r} is not key=value.", "Write overrides as key=value, e.g. lr=1e-4."
            )
        value: Any = raw
        if raw.strip()[:1] in ("[", "{"):
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError:
                raise UserError(f"override {item!r}: {raw!r} is not valid YAML.", "") from None
        elif cls is not None and key in cls.model_fields and _is_list(cls.model_fields[key].annotation):
            value = [v.strip() for v in raw.split(",") if v.strip()]
        out[key] = value
    return out


def _is_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(a) for a in typing.get_args(annotation))
    return origin in (list, tuple)


def _problem(err: Mapping[str, Any]) -> str:
    where = ".".join(str(p) for p in err.get("loc", ()))
    value = err.get("input")
    shown = f"={value!r}" if where and not isinstance(value, dict) else ""
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}{shown} ({msg})" if where else msg
