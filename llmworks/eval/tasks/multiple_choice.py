"""Multiple-choice tasks: MMLU, C-Eval, CMMLU, ARC and the built-in sentiment set."""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmworks.errors import UserError
from llmworks.eval import datasets as ds
from llmworks.eval import metrics as M
from llmworks.eval.tasks.base import Env, Request, Scored, Task
from llmworks.eval.tasks.stops import GEN_STOP


@dataclass
class MultipleChoice(Task):
    """Log-likelihood of each option after the prompt (acc, and acc_norm: per character), or, when the model
    cannot be scored, a short generation and the option it names (acc only)."""

    name: str
    load: Callable[[], tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]]
    """-> (samples, few-shot examples by subject). Sample: id, question, choices, answer (index), subject."""
    chinese: bool = False
    words: bool = False
    """The options are answer words (sentiment labels), not lettered choices in the question."""
    kind: str = "multiple_choice"
    method: Any = None
    _fewshot: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def samples(self) -> list[dict[str, Any]]:
        samples, self._fewshot = self.load()
        return samples

    def labels(self, sample: dict[str, Any]) -> list[str]:
        n = len(sample["choices"])
        return (
            list(sample["choices"])
            if self.words
            else sample.get("labels") or list(string.ascii_uppercase[:n])
        )

    def _text(self, sample: dict[str, Any], with_answer: bool) -> str:
        labels = self.labels(sample)
        answer_word = "答案：" if self.chinese else "Answer:"
        body = sample["question"]
        if not self.words:
            body += "".join(f"\n{lab}. {c}" for lab, c in zip(labels, sample["choices"], strict=False))
        text = f"{body}\n{answer_word}"
        return text + self._sep() + labels[sample["answer"]] if with_answer else text

    def _sep(self) -> str:
        return "" if self.chinese else " "

    def prompt(self, sample: dict[str, Any], env: Env) -> str:
        subject = sample.get("subject", "")
        if self.words:
            head = ""
        elif self.chinese:
            head = f"以下是关于{subject.replace('_', ' ')}的单项选择题，请直接给出正确答案的选项。\n\n"
        else:
            head = f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
        shots = self._fewshot.get(subject, [])[: env.shots]
        return head + "".join(self._text(s, True) + "\n\n" for s in shots) + self._text(sample, False)

    def requests(self, sample: dict[str, Any], env: Env) -> list[Request]:
        self.method = env.method()
        text = self.prompt(sample, env)
        labels = self.labels(sample)
        if self.method == "loglikelihood":
            if env.chat:
                context = env.render([{"role": "user", "content": text}]) or text
                return [Request("loglikelihood", context, lab) for lab in labels]
            return [Request("loglikelihood", text, self._sep() + lab) for lab in labels]
        if env.chat:
            return [Request.chat([{"role": "user", "content": text}], max_tokens=16)]
        return [Request("complete", text, max_tokens=8, stop=("\n\n", *GEN_STOP))]

    def score(self, sample: dict[str, Any], outputs: list[Any], env: Env) -> Scored:
        labels = self.labels(sample)
        target = labels[sample["answer"]]
        if self.method == "loglikelihood":
            if any(o is None for o in outputs):
                return Scored({"acc": 0.0, "acc_norm": 0.0}, target, None)
            best = max(range(len(outputs)), key=lambda i: outputs[i])
            # lm-eval's acc_norm: log-likelihood per character of the continuation
            norm = max(range(len(outputs)), key=lambda i: outputs[i] / max(1, len(labels[i])))
            return Scored(
                {"acc": float(best == sample["answer"]), "acc_norm": float(norm == sample["answer"])},
                target,
                labels[best],
                {"logprobs": dict(zip(labels, outputs, strict=True))},
            )
        picked = M.extract_choice(outputs[0] or "", labels)
        return Scored({"acc": float(picked == target)}, target, picked)


def _mc_row(row: dict[str, Any], question: str, options: str, answer: str, where: str) -> dict[str, Any]:
    """`options` names the choice columns ("ABCD", or "1234" for MMLU's headerless CSV)."""
    ds.require_fields(row, (question, *options, answer), where)
    letters = string.ascii_uppercase[: len(options)]
    key = str(row[answer]).strip().upper()
    if key not in letters:
        raise UserError(
            f"{where}: answer '{row[answer]}' is not one of {', '.join(letters)}.", "Fix the row."
        )
    return {"question": row[question], "choices": [row[c] for c in options], "answer": letters.index(key)}


def _csv_folder(
    root: Path, split: str, suffix: str, header: bool, fields: tuple[str, str, str], layout: str
) -> Callable[[], tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]]:
    """MMLU / C-Eval / CMMLU: <root>/<split>/<subject><suffix>.csv, few-shot from <root>/dev/."""

    def rows(folder: Path, suf: str) -> dict[str, list[dict[str, Any]]]:
        out = {}
        for f in sorted(folder.glob(f"*{suf}.csv")):
            subject = f.name[: -len(f"{suf}.csv")]
            q, letters, a = fields
            recs = ds.read_records(f, header=header)
            out[subject] = [
                {
                    "id": f"{subject}/{i}",
                    "subject": subject,
                    **_mc_row(r, q, letters, a, f"{f}:{i + 1 + header}"),
                }
                for i, r in enumerate(recs)
            ]
        return out

    def load() -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        folder = root / split if (root / split).is_dir() else root
        tests = rows(folder, suffix)
        if not tests:
            raise UserError(
                f"no *{suffix}.csv files in {folder}.", f"Expected the official layout: {layout}."
            )
        dev_suffix = "_dev" if suffix else ""
        return [s for v in tests.values() for s in v], rows(root / "dev", dev_suffix) if (
            root / "dev"
        ).is_dir() else {}

    return load


def mmlu(path: Path | None, name: str = "mmlu") -> MultipleChoice:
    layout = "test/<subject>_test.csv and dev/<subject>_dev.csv, no header: question,A,B,C,D,answer"
    if path is None:
        hf = ds.from_hf_cache("cais/mmlu", "all", "test", lambda r: r)
        if hf is None:
            raise ds.missing_data("mmlu", layout, "cais/mmlu")
        rows = [{"id": f"{r['subject']}/{i}", **r} for i, r in enumerate(hf)]
        return MultipleChoice(name, lambda: (rows, {}))
    return MultipleChoice(name, _csv_folder(path, "test", "_test", False, ("0", "1234", "5"), layout))


def ceval(path: Path | None, name: str = "ceval") -> MultipleChoice:
    layout = "val/<subject>_val.csv and dev/<subject>_dev.csv with header id,question,A,B,C,D,answer"
    if path is None:
        raise ds.missing_data(name, layout, None)
    return MultipleChoice(
        name, _csv_folder(path, "val", "_val", True, ("question", "ABCD", "answer"), layout), True
    )


def cmmlu(path: Path | None) -> MultipleChoice:
    layout = "test/<subject>.csv and dev/<subject>.csv with header ,Question,A,B,C,D,Answer"
    if path is None:
        raise ds.missing_data("cmmlu", layout, None)
    return MultipleChoice(
        "cmmlu", _csv_folder(path, "test", "", True, ("Question", "ABCD", "Answer"), layout), True
    )


def arc(path: Path | None) -> MultipleChoice:
    """ARC: the official JSONL (question.stem, question.choices) or the HF layout (question, choices)."""
    layout = "ARC-Challenge-Test.jsonl (official) or a .jsonl/.parquet with question, choices, answerKey"

    def convert(r: dict[str, Any], where: str) -> dict[str, Any]:
        ds.require_fields(r, ("question", "answerKey"), where)
        q = r["question"]
        if isinstance(q, dict):  # official layout
            stem, choices = q["stem"], q["choices"]
            texts, labels = [c["text"] for c in choices], [c["label"] for c in choices]
        else:
            stem, texts, labels = q, list(r["choices"]["text"]), list(r["choices"]["label"])
        if r["answerKey"] not in labels:
            raise UserError(
                f"{where}: answerKey {r['answerKey']!r} is not a choice label.", "Fix the record."
            )
        return {
            "id": str(r.get("id", where)),
            "question": stem,
            "choices": texts,
            "labels": labels,
            "answer": labels.index(r["answerKey"]),
        }

    def load() -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        if path is None:
            hf = ds.from_hf_cache("allenai/ai2_arc", "ARC-Challenge", "test", lambda r: r)
            if hf is None:
                raise ds.missing_data("arc", layout, "allenai/ai2_arc")
            return [convert(r, f"ai2_arc[{i}]") for i, r in enumerate(hf)], {}
        files = [path] if path.is_file() else sorted(p for p in path.iterdir() if "test" in p.name.lower())
        if not files:
            raise UserError(f"no test file in {path}.", f"Expected {layout}.")
        return [convert(r, f"{f}:{i + 1}") for f in files for i, r in enumerate(ds.read_records(f))], {}

    return MultipleChoice("arc", load)


def sentiment() -> MultipleChoice:
    """The held-out split of the built-in sentiment set (the demo's fine-tuning target), as 2-way choice."""
    from llmworks.data.builtin import SENTIMENT_PROMPT, sentiment_records

    def load() -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        labels = ["positive", "negative"]
        return [
            {
                "id": f"test/{i}",
                "question": SENTIMENT_PROMPT.format(text=r["text"]),
                "choices": labels,
                "answer": labels.index(r["label"]),
            }
            for i, r in enumerate(sentiment_records("test"))
        ], {}

    return MultipleChoice("sentiment", load, words=True)
