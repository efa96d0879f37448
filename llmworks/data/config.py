"""One config per `llmworks data` command: `llmworks data CMD ARGS [--config FILE] [key=value ...] [--flags]`.

A command that writes data saves the config that made it beside the output: `OUTPUT.config.yaml` next to a
single output file (`clean.jsonl.config.yaml`), `config.yaml` inside an output directory (`data mix -o DIR`,
`data demo`, `data annotate`). `llmworks data CMD --config THAT_FILE` repeats the run.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from llmworks.config import StageConfig

__all__ = [
    "AnnotateConfig",
    "CleanConfig",
    "ConvertConfig",
    "DemoConfig",
    "MixConfig",
    "PairsConfig",
    "ParseConfig",
    "SelfInstructConfig",
    "SelfcogConfig",
    "StatsConfig",
    "ToolCallsConfig",
    "config_path",
]

PARSE_ENGINES = ("auto", "docling", "mineru")


def config_path(output: Path) -> Path:
    """Where the config of a run that wrote the file `output` is saved."""
    return output.with_name(output.name + ".config.yaml")


def _required(cfg: StageConfig, *keys: str) -> list[str]:
    return [f"{k} is not set (give {_flag(k)} or {k}=...)" for k in keys if getattr(cfg, k) in (None, [])]


def _flag(key: str) -> str:
    return {"output": "-o PATH", "output_dir": "-o DIR"}.get(key, f"--{key.replace('_', '-')}")


def _at_least(cfg: StageConfig, minimum: float, *keys: str) -> list[str]:
    return [
        f"{k}={getattr(cfg, k)} (must be >= {minimum})"
        for k in keys
        if getattr(cfg, k) is not None and getattr(cfg, k) < minimum
    ]


class ParseConfig(StageConfig):
    """`data parse PATH ... -o OUT.jsonl`: documents to text records."""

    paths: list[Path] = Field(default_factory=list)
    """Files or directories (searched recursively)."""
    output: Path | None = None
    """Output JSONL: one record per document or page."""
    engine: str = "auto"
    """PDF parser: auto (pypdf text layer), docling or mineru (layout, tables, OCR; optional extras)."""

    def problems(self) -> list[str]:
        errors = _required(self, "paths", "output")
        if self.engine not in PARSE_ENGINES:
            errors.append(f"engine={self.engine!r} (choose one of {', '.join(PARSE_ENGINES)})")
        return errors


class ConvertConfig(StageConfig):
    """`data convert SRC -o OUT.jsonl --to FORMAT`."""

    src: Path | None = None
    """JSONL/JSON/CSV/Parquet file, or a directory saved with datasets."""
    output: Path | None = None
    """Output JSONL."""
    to: str = "messages"
    """Target format: messages, alpaca, sharegpt or preference."""
    strict: bool = False
    """Stop at the first malformed record instead of skipping it."""

    def problems(self) -> list[str]:
        from llmworks.data.formats import FORMATS

        errors = _required(self, "src", "output")
        if self.to not in FORMATS:
            errors.append(f"to={self.to!r} (choose one of {', '.join(FORMATS)})")
        return errors


class CleanConfig(StageConfig):
    """`data clean SRC -o OUT.jsonl`: the rules, in the order they run, and where the records go."""

    src: Path | None = None
    """Records to clean (JSONL/JSON/CSV/Parquet or a saved dataset)."""
    output: Path | None = None
    """Output JSONL of the records kept."""
    removed: Path | None = None
    """Also write the removed records here, tagged by rule."""
    mask_pii: bool = True
    """Mask e-mails, phone numbers, ID numbers and IP addresses."""
    min_chars: int = 10
    """Drop records shorter than this many characters (0: off)."""
    max_chars: int = 0
    """Drop records longer than this many characters (0: off)."""
    languages: list[str] = Field(default_factory=list)
    """Keep only these languages (ISO 639-1: en,zh, ...); empty keeps every language."""
    max_repetition: float = 0.5
    """Drop records with a larger share of repeated 3-grams (1: off)."""
    exact_dedupe: bool = True
    """Drop exact duplicates (compared with case, width, punctuation and whitespace folded)."""
    near_dedupe: bool = True
    """Drop near duplicates (MinHash LSH over token 3-grams)."""
    near_threshold: float = 0.8
    """Estimated Jaccard similarity at which two records count as near-duplicates."""
    workers: int | None = None
    """Processes computing MinHash signatures (default: up to 2)."""

    def problems(self) -> list[str]:
        errors = _at_least(self, 0, "min_chars", "max_chars") + _at_least(self, 1, "workers")
        if self.max_chars and self.max_chars < self.min_chars:
            errors.append(f"max_chars={self.max_chars} is below min_chars={self.min_chars}")
        if not 0 < self.near_threshold <= 1:
            errors.append(f"near_threshold={self.near_threshold} (must be in (0, 1])")
        if not 0 <= self.max_repetition <= 1:
            errors.append(f"max_repetition={self.max_repetition} (must be in [0, 1])")
        return errors


class StatsConfig(StageConfig):
    """`data stats FILE --tokenizer T`, or `data stats TEXT ... --compare-tokenizers A,B` (prints; saves only the
    histogram)."""

    files: list[Path] = Field(default_factory=list)
    """A data file; or text files with --compare-tokenizers."""
    tokenizer: str | None = None
    """tokenizer.json, an HF model directory, or a model name."""
    max_length: int | None = None
    """Report the share of records longer than this (tokens)."""
    plot: Path | None = None
    """Histogram PNG path (default: <file>.lengths.png next to it)."""
    compare_tokenizers: list[str] = Field(default_factory=list)
    """A,B,C: compare tokenizers on the text files."""
    as_json: bool = False
    """Print JSON instead of a table."""

    def problems(self) -> list[str]:
        errors = _required(self, "files") + _at_least(self, 1, "max_length")
        if not self.compare_tokenizers:
            if self.tokenizer is None:
                errors.append("tokenizer is not set (give --tokenizer, or --compare-tokenizers A,B)")
            if len(self.files) > 1:
                errors.append(f"files: one data file expected, got {len(self.files)} (run it once per file)")
        return errors


class MixConfig(StageConfig):
    """`data mix SPEC ... -o DIR`: a shuffled train/val split with a manifest (and this config)."""

    specs: list[str] = Field(default_factory=list)
    """PATH, PATH#N (N records) or PATH:W (W times the file)."""
    output: Path | None = None
    """Output directory: train.jsonl, val.jsonl, manifest.json, config.yaml."""
    val: float = 0.0
    """Validation split: a share (0.05) or a count (200)."""
    seed: int = 42
    """Shuffle and sampling seed."""

    def problems(self) -> list[str]:
        return _required(self, "specs", "output") + _at_least(self, 0, "val")


class AnnotateConfig(StageConfig):
    """`data annotate SRC`: the local web page that edits SFT records and ranks responses."""

    src: Path | None = None
    """SFT records to read and edit, or prompts with responses to rank."""
    output_dir: Path | None = None
    """Where edits and preferences go (default: next to SRC)."""
    host: str = "127.0.0.1"
    """Interface to listen on (loopback by default)."""
    port: int = 0
    """Port (0: a free one)."""

    def problems(self) -> list[str]:
        errors = _required(self, "src")
        if not 0 <= self.port <= 65535:
            errors.append(f"port={self.port} (must be in 0-65535)")
        return errors


class DemoConfig(StageConfig):
    """`data demo -o DIR`: the demo training set (self-cognition, sentiment, two-turn memory, general)."""

    output: Path | None = None
    """Output directory (train.jsonl, val.jsonl, manifest, config.yaml)."""
    name: str = "llmworks-demo"
    """The assistant's name for self-cognition data."""
    author: str = "the llmworks team"
    """Who made it."""
    tokenizer: str | None = None
    """Print token stats with this tokenizer (default: skip)."""
    seed: int = 42
    """Sampling and shuffle seed."""
    distill_model: str | None = None
    """Model whose own answers make the general part (default: embedded)."""

    def problems(self) -> list[str]:
        return _required(self, "output")


class SelfcogConfig(StageConfig):
    """`data synth selfcog --name N --author A -o OUT.jsonl`."""

    name: str | None = None
    """The assistant's name."""
    author: str | None = None
    """Who made it."""
    output: Path | None = None
    """Output JSONL (messages)."""
    languages: list[str] = Field(default_factory=lambda: ["en", "zh"])
    """Languages: en, zh."""
    per_question: int = 1
    """Answer variants per question."""
    seed: int = 0
    """Which answer variants are picked."""

    def problems(self) -> list[str]:
        return _required(self, "name", "author", "output", "languages") + _at_least(self, 1, "per_question")


class SelfInstructConfig(StageConfig):
    """`data synth self-instruct --seeds SEEDS -o OUT.jsonl -n N`."""

    seeds: Path | None = None
    """Seed tasks: alpaca/chat records, or one instruction per line."""
    output: Path | None = None
    """Output JSONL (instruction/input/output)."""
    n: int = 100
    """New tasks to make."""
    model: str | None = None
    """Model for the in-process engine, or the name at --base-url."""
    base_url: str | None = None
    """Any OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1."""
    max_rouge: float = 0.7
    """Drop candidates with ROUGE-L above this against the pool."""
    max_attempts: int | None = None
    """Give up after this many model calls (default 10n)."""
    seed: int = 0
    """Sampling seed."""

    def problems(self) -> list[str]:
        errors = _required(self, "seeds", "output") + _at_least(self, 1, "n", "max_attempts")
        if not 0 < self.max_rouge <= 1:
            errors.append(f"max_rouge={self.max_rouge} (must be in (0, 1])")
        return errors


class PairsConfig(StageConfig):
    """`data synth pairs --prompts P -o OUT.jsonl -k K`."""

    prompts: Path | None = None
    """Prompts: records with a prompt or messages, or one per line."""
    output: Path | None = None
    """Output JSONL: {prompt, responses}."""
    k: int = 2
    """Responses per prompt (at least 2, to rank them)."""
    model: str | None = None
    """Model for the in-process engine, or the name at --base-url."""
    base_url: str | None = None
    """Any OpenAI-compatible server."""
    temperature: float = 0.8
    """Sampling temperature (responses must differ to be ranked)."""
    max_tokens: int = 256
    """Tokens per response at most."""
    seed: int = 0
    """Sampling seed."""

    def problems(self) -> list[str]:
        errors = _required(self, "prompts", "output") + _at_least(self, 1, "max_tokens")
        if self.k < 2:
            errors.append(f"k={self.k} (at least 2 responses per prompt to rank them; use -k 2 or more)")
        if self.temperature < 0:
            errors.append(f"temperature={self.temperature} (must be >= 0)")
        return errors


TOOL_CALL_KINDS = ("single", "sequence", "no_tool", "unmatched", "follow_up")
"""unmatched: a request for a tool that is not on offer (others are), answered in words: no call."""


class ToolCallsConfig(StageConfig):
    """`data synth tool-calls [--tools builtin|FILE] -n N -o OUT.jsonl`: tool-calling SFT data."""

    tools: list[str] = Field(default_factory=lambda: ["builtin"])
    """builtin (python, calculator, chart, speak: run for real), catalog (a hundred tools of many domains,
    with natural requests; results synthesized) and/or YAML/JSON files of OpenAI tools."""
    output: Path | None = None
    """Output JSONL (messages with tool_calls, and tools); the manifest goes beside it."""
    n: int = 200
    """Examples to make (the kinds in turn: single call, two calls, no tool, a tool not on offer, follow-up)."""
    kinds: list[str] = Field(default_factory=lambda: list(TOOL_CALL_KINDS))
    """Which kinds to make, in equal numbers (a kind named twice, twice as many): single, sequence, no_tool,
    unmatched, follow_up."""
    offer_all: bool = False
    """Offer every tool in every record (for a small tool set your app always offers whole); by default the
    needed tools and a random few others, so the model learns to choose among whatever it is given."""
    paraphrase: bool = False
    """Let the model write new requests and calls (Self-Instruct); every call is validated either way. Off by
    default: a call can be valid and still wrong, and the embedded model writes such calls (use a larger one)."""
    model: str | None = None
    """Model that writes calls and the plain answers (in process; default: embedded), or the name at --base-url."""
    base_url: str | None = None
    """Any OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1."""
    max_attempts: int | None = None
    """Give up after this many tries (default 5n)."""
    seed: int = 0
    """Templates, tool sets and sampling seed: the same seed makes the same file."""

    def problems(self) -> list[str]:
        unknown = [k for k in self.kinds if k not in TOOL_CALL_KINDS]
        bad = (
            [f"kinds: unknown {', '.join(unknown)} (choose from {', '.join(TOOL_CALL_KINDS)})"]
            if unknown
            else []
        )
        return _required(self, "tools", "output") + _at_least(self, 1, "n", "max_attempts") + bad
