"""The demo training set: self-cognition data plus the built-in sentiment task, mixed.

Command sequence (what `llmworks data demo -o out/demo-data` runs):

    llmworks data synth selfcog --name NAME --author AUTHOR -o out/demo-data/sources/selfcog.jsonl
    # sentiment train split as messages: sentiment_messages("train"), written to sources/sentiment_train.jsonl
    llmworks data mix out/demo-data/sources/selfcog.jsonl out/demo-data/sources/sentiment_train.jsonl \
        -o out/demo-data --val 0.05 --seed 42
    llmworks data stats out/demo-data/train.jsonl --tokenizer MODEL

The held-out sentiment split (`sentiment_records("test")`) is for evaluation and is never mixed in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from rich.console import Console

from llmworks.data import io
from llmworks.data.mix import MixReport, mix
from llmworks.data.synth.selfcog import selfcog_records

SENTIMENT_PROMPT = "Classify the sentiment of this sentence. Answer positive or negative.\n\nSentence: {text}"
Split = Literal["train", "test"]


def sentiment_records(split: Split | None = None) -> Iterator[dict[str, Any]]:
    """The built-in sentiment set: {"text", "label": positive|negative, "split": train|test}."""
    text = resources.files("llmworks.data").joinpath("builtin/sentiment.jsonl").read_text(encoding="utf-8")
    for line in text.splitlines():
        rec = json.loads(line)
        if split is None or rec["split"] == split:
            yield rec


def sentiment_messages(split: Split = "train") -> Iterator[dict[str, Any]]:
    for rec in sentiment_records(split):
        yield {
            "messages": [
                {"role": "user", "content": SENTIMENT_PROMPT.format(text=rec["text"])},
                {"role": "assistant", "content": rec["label"]},
            ]
        }


def build_demo_data(
    out_dir: Path | str,
    name: str = "llmworks-demo",
    author: str = "the llmworks team",
    tokenizer: str | None = None,
    seed: int = 42,
    val: float = 0.05,
    console: Console | None = None,
) -> MixReport:
    console = console or Console()
    out_dir = Path(out_dir)
    sources = out_dir / "sources"
    selfcog = sources / "selfcog.jsonl"
    sentiment = sources / "sentiment_train.jsonl"
    io.write_jsonl(selfcog, selfcog_records(name, author, seed=seed))
    io.write_jsonl(sentiment, sentiment_messages("train"))
    report = mix([str(selfcog), str(sentiment)], out_dir, val=val, seed=seed)
    for s in report.sources:
        console.print(f"{Path(s.path).name}: {s.taken} records")
    console.print(f"demo data: train {report.train}, val {report.val} in {out_dir}")
    if tokenizer:
        from llmworks.data.stats import data_stats
        from llmworks.data.tokenizers import load_tokenizer

        st = data_stats(
            out_dir / "train.jsonl", load_tokenizer(tokenizer), plot=out_dir / "train.lengths.png"
        )
        console.print(
            f"tokens per record: p50 {st.tokens_p50:.0f}, p90 {st.tokens_p90:.0f}, max {st.tokens_max}; "
            f"turns {st.turns_mean}; histogram {st.plot}"
        )
    return report
