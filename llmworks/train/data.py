"""Training data: records read and converted (llmworks.data), rendered with the model's own chat template,
tokenized with per-token targets, truncated, optionally packed.

A `Sample` stores next-token targets already shifted (targets[i] is the label for the token after
position i, -100 where no loss applies), so packing never trains across a sample boundary.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmworks.data import formats, io
from llmworks.data.mix import parse_spec
from llmworks.errors import UserError
from llmworks.models.template import ChatTemplate

IGNORE = -100
PLACEHOLDERS = {"{{NAME}}": "model_name", "{{AUTHOR}}": "model_author"}


@dataclass
class Sample:
    input_ids: list[int]
    targets: list[int]
    """Shifted labels: the token to predict after each position, or -100."""
    position_ids: list[int] = field(default_factory=list)

    @property
    def n_targets(self) -> int:
        return sum(t != IGNORE for t in self.targets)


@dataclass
class DataStats:
    records: int = 0
    truncated: int = 0
    dropped: int = 0
    """Samples left without any target token after truncation."""
    tokens: int = 0
    target_tokens: int = 0


# -- reading -----------------------------------------------------------------------------------------


def read_specs(specs: list[str], seed: int, fill: dict[str, str]) -> list[dict[str, Any]]:
    """Records of every `path` / `path#N` spec, placeholders filled. Malformed lines are errors."""
    out: list[dict[str, Any]] = []
    for spec in specs:
        records = _read_one(spec)
        count = _builtin_count(spec) if spec.startswith("builtin:") else parse_spec(spec).count
        if count is not None:
            records = _take(records, count, random.Random(f"{seed}:{spec}"))
        out += [fill_placeholders(r, fill, spec) for r in records]
    return out


def read_text(path: str | Path) -> list[str]:
    """Paragraphs of a text file (split at blank lines), or the `text` field of a record file."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"no such file: {p}.", "Check the path.")
    if p.suffix in (".txt", ".md"):
        return [t.strip() for t in p.read_text(encoding="utf-8").split("\n\n") if t.strip()]
    texts = []
    for rec in _read_one(str(p)):
        if not isinstance(rec.get("text"), str):
            raise UserError(f"{p}: a record has no `text` string.", "Pretraining records need a text field.")
        texts.append(rec["text"])
    return texts


def _read_one(spec: str) -> list[dict[str, Any]]:
    if spec.startswith("builtin:"):
        from llmworks.data.builtin import BUILTIN_SETS as builtin

        name = spec.removeprefix("builtin:").partition("#")[0]
        if name not in builtin:
            raise UserError(
                f"unknown built-in data set {spec}.", f"Use builtin:{', builtin:'.join(builtin)}."
            )
        return list(builtin[name]())
    path = Path(parse_spec(spec).path)
    if not path.exists():
        raise UserError(f"training data not found: {path}.", "Check the `data` paths in the recipe.")
    if path.suffix in (".txt", ".md"):
        return [{"text": t} for t in read_text(path)]
    records = []
    for row in io.read_records(path):
        if row.error is not None:
            raise UserError(f"{row.where}: {row.error}.", "Fix or remove that line.")
        assert row.record is not None
        records.append(row.record)
    return records


def _builtin_count(spec: str) -> int | None:
    _, sep, n = spec.partition("#")
    if not sep:
        return None
    if not n.isdigit() or int(n) < 1:
        raise UserError(f"bad count in {spec}.", "Use builtin:NAME#N with N >= 1.")
    return int(n)


def _take(records: list[dict[str, Any]], n: int, rng: random.Random) -> list[dict[str, Any]]:
    if not records:
        return []
    reps, rest = divmod(n, len(records))
    return records * reps + rng.sample(records, rest)


def fill_placeholders(record: dict[str, Any], fill: dict[str, str], where: str) -> dict[str, Any]:
    def sub(v: Any) -> Any:
        if isinstance(v, str):
            for mark, key in PLACEHOLDERS.items():
                if mark in v:
                    if not fill.get(key):
                        raise UserError(
                            f"{where} uses {mark} but {key} is not set.",
                            f"Set {key}=... (self-cognition data needs the model's name and author).",
                        )
                    v = v.replace(mark, fill[key])
            return v
        if isinstance(v, dict):
            return {k: sub(x) for k, x in v.items()}
        if isinstance(v, list):
            return [sub(x) for x in v]
        return v

    return sub(record)


def to_example(record: dict[str, Any], where: str) -> formats.Example:
    try:
        return formats.parse(record)
    except formats.BadRecord as e:
        raise UserError(f"{where}: {e}.", "Fix the record (messages, sharegpt or alpaca shape).") from None


# -- tokenizing --------------------------------------------------------------------------------------


def encode_chat(
    messages: list[dict[str, Any]],
    tokenizer: Any,
    template: ChatTemplate,
    max_len: int,
    only_last: bool = False,
    tools: list[dict[str, Any]] | None = None,
) -> tuple[Sample, bool]:
    """Tokens of the rendered conversation with targets on every assistant reply (or only the last) up
    to and including the end-of-turn token; tool calls are assistant output, so they are trained too.
    Returns (sample, truncated)."""
    from llmworks.models.chat_policy import conversation

    # The chat policy's rendering (the one `llmworks serve` uses): a tuned model then writes tool calls the
    # way the server parses them (natively where the template knows tools, Hermes tags otherwise). The
    # default system prompt is already in the template (see run.build_model).
    messages, tools = conversation(messages, template, None, tools)

    def render(msgs: list[dict[str, Any]], gen: bool) -> str:
        return template.render(msgs, add_generation_prompt=gen, tools=tools)

    text = render(messages, False)
    eot = template.end_of_turn
    spans = []  # character spans of the assistant replies in `text`
    for i, m in enumerate(messages):
        if m["role"] != "assistant" or (only_last and i != len(messages) - 1):
            continue
        start = len(render(messages[:i], True))
        end_text = render(messages[: i + 1], False)
        if not (text.startswith(end_text) and end_text.startswith(text[:start])):
            raise UserError(
                f"the chat template ({template.origin}) does not render conversations prefix by prefix, "
                "so assistant turns cannot be located.",
                "Use a model whose template appends turns (ChatML, Llama 3, ...).",
            )
        end = len(end_text)
        if eot is not None:  # stop the span right after the end-of-turn token (not the newline after it)
            k = text.rfind(eot, start, end)
            end = k + len(eot) if k >= 0 else end
        spans.append((start, end))
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    labels = [IGNORE] * len(ids)
    j = 0
    for t, (a, _b) in enumerate(enc["offset_mapping"]):
        while j < len(spans) and a >= spans[j][1]:
            j += 1
        if j < len(spans) and spans[j][0] <= a < spans[j][1]:
            labels[t] = ids[t]
    return _finish(ids, labels, max_len)


def encode_text(text: str, tokenizer: Any, max_len: int) -> tuple[Sample, bool]:
    """Plain text: every token is a target; EOS appended so documents end."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        ids = [*ids, tokenizer.eos_token_id]
    return _finish(list(ids), list(ids), max_len)


def _finish(ids: list[int], labels: list[int], max_len: int) -> tuple[Sample, bool]:
    truncated = len(ids) > max_len
    ids, labels = ids[:max_len], labels[:max_len]
    targets = [*labels[1:], IGNORE]
    return Sample(ids, targets, list(range(len(ids)))), truncated


def encode_all(
    records: list[dict[str, Any]], tokenizer: Any, template: ChatTemplate | None, max_len: int, what: str
) -> tuple[list[Sample], DataStats]:
    """Chat records to samples (template required); samples without targets are dropped and counted."""
    stats = DataStats(records=len(records))
    samples = []
    for n, rec in enumerate(records):
        if template is None:
            raise UserError("the model has no chat template, so chat data cannot be formatted.", "")
        ex = to_example(rec, f"{what} record {n + 1}")
        s, cut = encode_chat(ex.messages, tokenizer, template, max_len, tools=ex.tools)
        stats.truncated += cut
        if s.n_targets == 0:
            stats.dropped += 1
            continue
        stats.tokens += len(s.input_ids)
        stats.target_tokens += s.n_targets
        samples.append(s)
    return samples, stats


def split_val(samples: list[Any], ratio: float, seed: int) -> tuple[list[Any], list[Any]]:
    if ratio <= 0 or len(samples) < 2:
        return samples, []
    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(samples) * ratio))
    val = set(order[:n_val])
    return [s for i, s in enumerate(samples) if i not in val], [samples[i] for i in sorted(val)]


def pack(samples: list[Sample], max_len: int) -> list[Sample]:
    """Greedy packing in order into rows of at most `max_len` tokens; position ids restart per sample,
    which transformers' masking reads as separate sequences."""
    rows: list[Sample] = []
    cur = Sample([], [], [])
    for s in samples:
        if cur.input_ids and len(cur.input_ids) + len(s.input_ids) > max_len:
            rows.append(cur)
            cur = Sample([], [], [])
        cur.input_ids += s.input_ids
        cur.targets += s.targets
        cur.position_ids += s.position_ids
    if cur.input_ids:
        rows.append(cur)
    return rows


def chunk_stream(samples: list[Sample], max_len: int) -> list[Sample]:
    """Continued pre-training: one token stream cut into rows of `max_len` (documents cross rows)."""
    ids: list[int] = []
    targets: list[int] = []
    for s in samples:
        ids += s.input_ids
        targets += s.targets
    return [
        Sample(ids[i : i + max_len], targets[i : i + max_len], list(range(len(ids[i : i + max_len]))))
        for i in range(0, len(ids), max_len)
    ]


def collate(rows: list[Sample], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors; packed rows carry position ids so attention stays inside each sample."""
    import torch

    width = max(len(r.input_ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    targets = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r.input_ids)
        ids[i, :n] = torch.tensor(r.input_ids)
        targets[i, :n] = torch.tensor(r.targets)
        pos[i, :n] = torch.tensor(r.position_ids)
        mask[i, :n] = 1
    packed = any(r.position_ids.count(0) > 1 for r in rows)
    batch = {"input_ids": ids, "targets": targets, "position_ids": pos}
    if not packed:  # a packed batch relies on position ids; an attention mask would hide the boundaries
        batch["attention_mask"] = mask
    return batch


def micro_batches(n: int, batch_size: int, seed: int, start: int = 0) -> Iterator[list[int]]:
    """Endless deterministic micro-batches of sample indices, from micro-batch number `start` on: each epoch
    is a fresh permutation seeded by (seed, epoch), so a resumed run sees exactly the same order."""
    per_epoch = -(-n // batch_size)
    k = start
    while True:
        epoch, j = divmod(k, per_epoch)
        order = list(range(n))
        random.Random(f"{seed}:{epoch}").shuffle(order)
        yield order[j * batch_size : (j + 1) * batch_size]
        k += 1
