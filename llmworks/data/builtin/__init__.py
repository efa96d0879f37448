"""Built-in data sets (`builtin:NAME` in training recipes) and the demo training set built from them.

The sets: `sentiment` (a labelled sentiment task with a held-out split), `memory` (two-turn conversations:
a code word in turn 1, asked back in turn 2) and `general` (the base model's own answers to everyday
prompts). The demo training set mixes them with self-cognition and tool-use data.

Command sequence (what `llmworks data demo -o out/demo-data` runs):

    llmworks data synth selfcog --name NAME --author AUTHOR -o out/demo-data/sources/selfcog.jsonl
    # sentiment train split as messages: sentiment_messages("train"), written to sources/sentiment_train.jsonl
    # two-turn memory conversations: memory_messages("train"), written to sources/memory_train.jsonl
    # the base model's answers to everyday prompts: general_messages(), written to sources/general.jsonl
    # tool use, every one of speak, chart, python offered in every record (tool_use_records):
    llmworks data synth tool-calls --kinds single -n 30 ...; ... --kinds no_tool -n 8 ... (brief schemas)
    llmworks data mix out/demo-data/sources/selfcog.jsonl out/demo-data/sources/sentiment_train.jsonl#120 \
        out/demo-data/sources/memory_train.jsonl#60 out/demo-data/sources/general.jsonl:2 \
        out/demo-data/sources/tool_calls.jsonl -o out/demo-data --val 0.05 --seed 42
    llmworks data stats out/demo-data/train.jsonl --tokenizer MODEL

The held-out splits (`sentiment_records("test")`, `memory_messages("test")`, whose code words never occur
in training) are for evaluation and are never mixed in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rich.console import Console

from llmworks.console import make_console
from llmworks.data import io
from llmworks.data.mix import MixReport, mix
from llmworks.data.synth.selfcog import selfcog_records

if TYPE_CHECKING:
    from llmworks.data.synth.tool_calls import ToolSpec

SENTIMENT_PROMPT = "Classify the sentiment of this sentence. Answer positive or negative.\n\nSentence: {text}"
Split = Literal["train", "test"]


def sentiment_records(split: Split | None = None) -> Iterator[dict[str, Any]]:
    """The built-in sentiment set: {"text", "label": positive|negative, "split": train|test}."""
    text = resources.files(__name__).joinpath("sentiment.jsonl").read_text(encoding="utf-8")
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


# The memory task: a code word in the first user turn, asked back in the second. The first reply does not
# repeat it, so the second answer has to come from the first turn. Train and test words are disjoint.
_MEMORY_WORDS = {
    "train": [
        "amber",
        "anchor",
        "apple",
        "arrow",
        "aspen",
        "badger",
        "bamboo",
        "basil",
        "beacon",
        "birch",
        "bison",
        "blossom",
        "breeze",
        "bronze",
        "cactus",
        "canyon",
        "cedar",
        "cherry",
        "cinder",
        "clover",
        "cobalt",
        "comet",
        "coral",
        "cotton",
        "crystal",
        "daisy",
        "delta",
        "desert",
        "dolphin",
        "eagle",
        "ember",
        "falcon",
        "feather",
        "fern",
        "fig",
        "forest",
        "fossil",
        "garnet",
        "ginger",
        "glacier",
        "granite",
        "harbor",
        "hazel",
        "heron",
        "indigo",
        "island",
        "ivory",
        "jasmine",
        "jungle",
        "kettle",
        "lagoon",
        "lantern",
        "lava",
        "lilac",
        "lotus",
        "magnet",
        "mango",
        "marble",
        "meadow",
        "meteor",
        "mint",
        "nectar",
        "nickel",
        "oasis",
        "olive",
        "onyx",
        "orchid",
        "otter",
        "panda",
        "pebble",
        "pepper",
        "pine",
        "planet",
        "plum",
        "prism",
        "quartz",
        "raven",
        "reef",
        "ribbon",
        "saffron",
        "sapphire",
    ],
    "test": [
        "walnut",
        "thunder",
        "tulip",
        "velvet",
        "willow",
        "zebra",
        "topaz",
        "summit",
        "pelican",
        "mosaic",
        "lichen",
        "juniper",
        "harvest",
        "galaxy",
        "fjord",
        "echo",
        "dune",
        "cypress",
        "compass",
        "boulder",
        "acorn",
        "puffin",
        "sparrow",
        "violin",
        "yarrow",
        "cricket",
        "lemur",
        "nutmeg",
        "opal",
        "tundra",
    ],
}
_REMEMBER = ("Remember this code word: {w}.", "Please memorize the word {w}.", "Keep this word in mind: {w}.")
_ASK_BACK = (
    "What is the code word?",
    "Which word did I ask you to remember?",
    "Tell me the word from before.",
)
MEMORY_ACK = "Got it, I will remember it."


def memory_messages(split: Split = "train") -> Iterator[dict[str, Any]]:
    """Two-turn conversations; the held-out answer to check is `"The code word is {w}."`."""
    for i, w in enumerate(_MEMORY_WORDS[split]):
        yield {
            "messages": [
                {"role": "user", "content": _REMEMBER[i % 3].format(w=w)},
                {"role": "assistant", "content": MEMORY_ACK},
                {"role": "user", "content": _ASK_BACK[(i // 3) % 3]},
                {"role": "assistant", "content": f"The code word is {w}."},
            ],
            "word": w,
        }


def general_messages(model: str | None = None, max_tokens: int = 40) -> list[dict[str, Any]]:
    """Everyday prompts answered by the model itself (greedy; the embedded default unless `model`).

    Mixed into fine-tuning data, they keep the tuned model answering ordinary questions as it did before
    (self-distillation, a stand-in for the general chat data people mix in, which is not available offline).
    Answers cut off by `max_tokens` are left out: they would teach the model not to stop, and the short ones
    kept teach it to stop well within `llmworks models check`'s 48 tokens. Cached per model
    file in the llmworks home, since greedy answers do not change.
    """
    from llmworks.models.sources import llmworks_home, resolve

    source = resolve(model)
    prompts = resources.files(__name__).joinpath("general_prompts.txt").read_text("utf-8")
    stat = source.path.stat()
    key = f"{source.path.name}-{stat.st_size}-{int(stat.st_mtime)}-{len(prompts)}-{max_tokens}-policy1"
    cache = llmworks_home() / "distilled" / f"{key}.jsonl"
    if cache.is_file():
        return [json.loads(line) for line in cache.read_text("utf-8").splitlines()]
    from llmworks.client import make_client

    records = []
    with make_client(model) as client:  # under the chat policy: the answers the served model gives
        for q in prompts.splitlines():
            msgs = [{"role": "user", "content": q}]
            reply = client.chat(msgs, max_tokens=max_tokens, temperature=0.0)
            if reply.finish_reason == "stop" and (reply.content or "").strip():
                records.append({"messages": [*msgs, {"role": "assistant", "content": reply.content.strip()}]})
    io.write_jsonl(cache, records)
    return records


TOOL_CATALOG = Path(__file__).with_name("tool_catalog.yaml")
"""About a hundred tools of many domains, each with natural requests (`data synth tool-calls --tools catalog`):
varied schemas, so a tuned model learns to call whatever tool it is given, not only the built-ins."""

DEMO_TOOLS = ("speak", "chart", "python")
"""The agent stage's built-in tools the demo model learns to call (read aloud, plot, compute)."""

BUILTIN_SETS = {"sentiment": sentiment_messages, "memory": memory_messages, "general": general_messages}
"""`builtin:NAME` in a recipe's data list: name -> a function returning the training records."""


def tool_use_records(
    tools: Sequence[ToolSpec], calls: int, plain: int, model: str | None, seed: int, console: Console
) -> list[dict[str, Any]]:
    """What `llmworks data synth tool-calls --kinds single` and `--kinds no_tool` make, with every tool on
    offer in every record: the demo asks with one fixed tool set, and a 135M model learns a fixed prompt
    from few records. Mostly calls: answering in words is what the base model does anyway."""
    from llmworks.client import make_client
    from llmworks.data.synth.tool_calls import SynthReport, synth_tool_calls

    made, answered = SynthReport(), SynthReport()  # one each: a report counts towards its own n
    records = list(synth_tool_calls(tools, calls, None, made, seed=seed, kinds=["single"], offer_all=True))
    with make_client(model) as client:  # it answers the requests no tool serves, as in `general`
        records += synth_tool_calls(
            tools, plain, client, answered, seed=seed, kinds=["no_tool"], offer_all=True
        )
    console.print(
        f"tool use: {made.kinds['single']} calls of {', '.join(t.name for t in tools)} (tools run for real, "
        f"{sum(made.calls_rejected.values())} calls rejected) and {answered.kinds['no_tool']} requests that "
        "need no tool"
    )
    return records


def build_demo_data(
    out_dir: Path | str,
    name: str = "llmworks-demo",
    author: str = "the llmworks team",
    tokenizer: str | None = None,
    seed: int = 42,
    val: float = 0.05,
    console: Console | None = None,
    distill_model: str | None = None,
    tools: Sequence[ToolSpec] = (),
    tool_calls: int = 30,
    tool_plain: int = 8,
) -> MixReport:
    """`tools` (with runners: the agent stage's built-ins) add tool-use records: single calls, each tool its
    share, and requests no tool serves, every tool offered in every record (see `tool_use_records`)."""
    console = console or make_console()
    out_dir = Path(out_dir)
    sources = out_dir / "sources"
    selfcog = sources / "selfcog.jsonl"
    sentiment = sources / "sentiment_train.jsonl"
    memory = sources / "memory_train.jsonl"
    general = sources / "general.jsonl"
    io.write_jsonl(selfcog, selfcog_records(name, author, seed=seed))
    io.write_jsonl(sentiment, sentiment_messages("train"))
    io.write_jsonl(memory, memory_messages("train"))
    console.print("general data: the base model's own answers to everyday prompts (self-distillation)")
    io.write_jsonl(general, general_messages(distill_model))
    # General answers twice over: they anchor everything the tasks do not cover.
    specs = [str(selfcog), f"{sentiment}#120", f"{memory}#60", f"{general}:2"]
    if tools:
        tool_use = sources / "tool_calls.jsonl"
        io.write_jsonl(
            tool_use, tool_use_records(tools, tool_calls, tool_plain, distill_model, seed, console)
        )
        specs.append(str(tool_use))
    report = mix(specs, out_dir, val=val, seed=seed)
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
