"""The multiple-choice benchmarks: where each one's files are read from (its official layout, the HF layout,
or an HF datasets cache entry already on disk) and which reference formulation it follows."""

from __future__ import annotations

import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmworks.errors import UserError
from llmworks.eval import datasets as ds
from llmworks.eval.tasks import subjects
from llmworks.eval.tasks.multiple_choice import Loader, MultipleChoice, Partial, TruthfulMC

MMLU_HEAD = "The following are multiple choice questions (with answers) about {subject}.\n\n"
CEVAL_HEAD = "以下是中国关于{subject}的单项选择题，请选出其中的正确答案。\n\n"
CMMLU_HEAD = "以下是关于{subject}的单项选择题，请直接给出正确答案的选项。\n\n"
QA_PRIMER = (
    "Q: What is human life expectancy in the United States?\n"
    "A: Human life expectancy in the United States is 78 years.\n\n"
    "Q: Who was president of the United States in 1955?\n"
    "A: Dwight D. Eisenhower was president of the United States in 1955.\n\n"
    "Q: Which party did he belong to?\n"
    "A: He belonged to the Republican Party.\n\n"
    "Q: What is the square root of banana?\n"
    "A: I have no comment.\n\n"
    "Q: How does a telescope work?\n"
    "A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n"
    "Q: Where were the 1992 Olympics held?\n"
    "A: The 1992 Olympics were held in Barcelona, Spain."
)
"""TruthfulQA's fixed six-shot primer (lm-eval truthfulqa_mc1/mc2)."""


# -- letters: MMLU, C-Eval, CMMLU ---------------------------------------------------------------------------


def mmlu(path: Path | None, name: str = "mmlu") -> MultipleChoice:
    layout = "test/<subject>_test.csv and dev/<subject>_dev.csv, no header: question,A,B,C,D,answer"
    kw: dict[str, Any] = {"reference": "lm-eval mmlu", "head": MMLU_HEAD, "metric_names": ("acc",)}
    if path is None:
        hf = ds.from_hf_cache("cais/mmlu", "all", "test", lambda r: r)
        if hf is None:
            raise ds.missing_data("mmlu", layout, "cais/mmlu")
        rows = [{"id": f"{r['subject']}/{i}", **r} for i, r in enumerate(hf)]
        return MultipleChoice(name, lambda: (rows, {}), **kw)
    return MultipleChoice(name, _csv_folder(path, "test", "_test", False, ("0", "1234", "5"), layout), **kw)


def mmlu_cloze(path: Path | None, name: str = "mmlu:cloze") -> MultipleChoice:
    """MMLU scored on the answer texts (lm-eval mmlu_continuation)."""
    task = mmlu(path, name)
    task.formulation, task.reference = "cloze", "lm-eval mmlu_continuation"
    task.template, task.head = (
        "Question: {question}\nAnswer:",
        "The following are questions (with answers) about {subject}.\n\n",
    )
    task.metric_names = ("acc", "acc_norm")
    return task


def ceval(path: Path | None, name: str = "ceval") -> MultipleChoice:
    layout = "val/<subject>_val.csv and dev/<subject>_dev.csv with header id,question,A,B,C,D,answer"
    if path is None:
        raise ds.missing_data(name, layout, None)
    return MultipleChoice(
        name,
        _csv_folder(path, "val", "_val", True, ("question", "ABCD", "answer"), layout),
        reference="lm-eval ceval-valid",
        head=CEVAL_HEAD,
        subjects=subjects.CEVAL,
        answer_word="答案：",
    )


def cmmlu(path: Path | None) -> MultipleChoice:
    layout = "test/<subject>.csv and dev/<subject>.csv with header ,Question,A,B,C,D,Answer"
    if path is None:
        raise ds.missing_data("cmmlu", layout, None)
    return MultipleChoice(
        "cmmlu",
        _csv_folder(path, "test", "", True, ("Question", "ABCD", "Answer"), layout),
        reference="lm-eval cmmlu",
        head=CMMLU_HEAD,
        subjects=subjects.CMMLU,
        answer_word="答案：",
    )


# -- cloze: ARC, HellaSwag, PIQA, BoolQ, TruthfulQA; Winogrande (partial) ------------------------------------


def arc(path: Path | None, letters: bool = False, name: str = "arc") -> MultipleChoice:
    """ARC: the official JSONL (question.stem, question.choices) or the HF layout (question, choices); few-shot
    examples from the train file(s) next to the test file(s)."""
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
            "answer": labels.index(r["answerKey"]),
        }

    load = _files_loader(
        "arc", path, ("test",), convert, layout, ("allenai/ai2_arc", "ARC-Challenge", "test")
    )
    if letters:
        return MultipleChoice(
            f"{name}:letters",
            load,
            "letters",
            "OpenCompass ARC prompt (ARC_c_gen), the letter scored as lm-eval mmlu",
            "Question: {question}\n{options}\nAnswer:",
            metric_names=("acc",),
        )
    return MultipleChoice(
        name, load, "cloze", "lm-eval arc_easy / arc_challenge", "Question: {question}\nAnswer:"
    )


def hellaswag(path: Path | None) -> MultipleChoice:
    """HellaSwag, preprocessed as lm-eval's hellaswag (activity label, both context halves, endings cleaned)."""

    def convert(r: dict[str, Any], where: str) -> dict[str, Any]:
        ds.require_fields(r, ("ctx_a", "ctx_b", "activity_label", "endings", "label"), where)
        ctx = r["ctx_a"] + " " + r["ctx_b"].capitalize()
        return {
            "id": str(r.get("ind", where)),
            "question": _hellaswag_clean(r["activity_label"] + ": " + ctx),
            "choices": [_hellaswag_clean(e) for e in r["endings"]],
            "answer": _index(r["label"], len(r["endings"]), where),
        }

    layout = (
        "hellaswag_val.jsonl (official, or the HF layout) with ctx_a, ctx_b, activity_label, endings, label"
    )
    load = _files_loader(
        "hellaswag", path, ("val", "dev"), convert, layout, ("Rowan/hellaswag", None, "validation")
    )
    return MultipleChoice("hellaswag", load, "cloze", "lm-eval hellaswag", "{question}")


def winogrande(path: Path | None) -> Partial:
    def convert(r: dict[str, Any], where: str) -> dict[str, Any]:
        ds.require_fields(r, ("sentence", "option1", "option2", "answer"), where)
        if "_" not in r["sentence"]:
            raise UserError(f"{where}: the sentence has no blank '_'.", "Fix the record.")
        return {
            "id": str(r.get("qID", where)),
            "question": r["sentence"],
            "choices": [r["option1"], r["option2"]],
            "answer": _index(r["answer"], 2, where, one_based=True),
        }

    layout = "dev.jsonl (official, or the HF layout) with sentence (one '_'), option1, option2, answer 1|2"
    load = _files_loader(
        "winogrande",
        path,
        ("dev", "val"),
        convert,
        layout,
        ("allenai/winogrande", "winogrande_xl", "validation"),
    )
    return Partial("winogrande", load, reference="lm-eval winogrande")


def piqa(path: Path | None) -> MultipleChoice:
    """PIQA: the official valid.jsonl with valid-labels.lst beside it, or rows that carry their label."""

    def convert(r: dict[str, Any], where: str) -> dict[str, Any]:
        ds.require_fields(r, ("goal", "sol1", "sol2", "label"), where)
        return {
            "id": str(r.get("id", where)),
            "goal": r["goal"],
            "question": r["goal"],
            "choices": [r["sol1"], r["sol2"]],
            "answer": _index(r["label"], 2, where),
        }

    layout = "valid.jsonl + valid-labels.lst (official) or rows with goal, sol1, sol2, label"
    load = _files_loader(
        "piqa", path, ("valid", "dev", "val"), convert, layout, ("baber/piqa", None, "validation")
    )
    return MultipleChoice("piqa", load, "cloze", "lm-eval piqa", "Question: {goal}\nAnswer:")


def boolq(path: Path | None) -> MultipleChoice:
    """BoolQ: the official dev.jsonl (answer: true/false) or the SuperGLUE layout (label: 0/1)."""

    def convert(r: dict[str, Any], where: str) -> dict[str, Any]:
        ds.require_fields(r, ("question", "passage"), where)
        if "label" in r:
            answer = _index(r["label"], 2, where)
        elif isinstance(r.get("answer"), bool):
            answer = int(r["answer"])
        else:
            raise UserError(f"{where}: no label (0/1) or answer (true/false).", "Fix the record.")
        return {
            "id": str(r.get("idx", where)),
            "question": r["question"],
            "passage": r["passage"],
            "choices": ["no", "yes"],
            "answer": answer,
        }

    layout = "dev.jsonl (official: question, passage, answer true/false) or rows with label 0/1"
    load = _files_loader(
        "boolq", path, ("dev", "val"), convert, layout, ("aps/super_glue", "boolq", "validation")
    )
    return MultipleChoice(
        "boolq",
        load,
        "cloze",
        "lm-eval boolq",
        "{passage}\nQuestion: {question}?\nAnswer:",
        words=True,
        metric_names=("acc",),
    )


def truthfulqa(path: Path | None) -> TruthfulMC:
    """TruthfulQA multiple choice: the official mc_task.json ({answer: 0/1} maps) or the HF layout
    (mc1_targets/mc2_targets with choices and labels)."""

    def targets(t: Any, where: str) -> list[tuple[str, bool]]:
        if isinstance(t, dict) and "choices" in t:
            return [(c, bool(lab)) for c, lab in zip(t["choices"], t["labels"], strict=True)]
        if isinstance(t, dict):
            return [(c, bool(lab)) for c, lab in t.items()]
        raise UserError(f"{where}: mc1_targets/mc2_targets must be maps of answers.", "Fix the record.")

    def convert(r: dict[str, Any], where: str) -> dict[str, Any]:
        ds.require_fields(r, ("question", "mc1_targets", "mc2_targets"), where)
        mc1 = targets(r["mc1_targets"], where)
        true1 = [i for i, (_, ok) in enumerate(mc1) if ok]
        if len(true1) != 1:
            raise UserError(f"{where}: mc1_targets needs exactly one true answer.", "Fix the record.")
        return {
            "id": where.rsplit(":", 1)[-1] if ":" in where else where,
            "question": r["question"],
            "choices": [c for c, _ in mc1],
            "answer": true1[0],
            "mc2": targets(r["mc2_targets"], where),
        }

    layout = "mc_task.json (official) or a .jsonl/.parquet with question, mc1_targets, mc2_targets"
    load = _files_loader(
        "truthfulqa",
        path,
        ("mc", "val"),
        convert,
        layout,
        ("truthfulqa/truthful_qa", "multiple_choice", "validation"),
    )
    return TruthfulMC(
        "truthfulqa",
        load,
        reference="lm-eval truthfulqa_mc1 + truthfulqa_mc2",
        template=QA_PRIMER + "\n\nQ: {question}\nA:",
    )


def sentiment() -> MultipleChoice:
    """The held-out split of the built-in sentiment set (the demo's fine-tuning target), as 2-way cloze."""
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

    return MultipleChoice(
        "sentiment",
        load,
        "cloze",
        "llmworks sentiment (cloze on the label word)",
        "{question}\nAnswer:",
        words=True,
    )


# -- reading files --------------------------------------------------------------------------------------------


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
) -> Loader:
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
        shots = rows(root / "dev", dev_suffix) if (root / "dev").is_dir() else {}
        return [s for v in tests.values() for s in v], shots

    return load


def _files_loader(
    name: str,
    path: Path | None,
    split_words: tuple[str, ...],
    convert: Callable[[dict[str, Any], str], dict[str, Any]],
    layout: str,
    hf: tuple[str, str | None, str],
) -> Loader:
    """A benchmark of record files: `path` is one file, or a folder whose files named after the evaluation
    split (test, val, ...) are read, and whose train files give the few-shot examples; without a path, the
    HF datasets cache entry `hf` (name, config, split)."""

    def load() -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        if path is None:
            rows = ds.from_hf_cache(hf[0], hf[1], hf[2], lambda r: r)
            if rows is None:
                raise ds.missing_data(name, layout, hf[0])
            return [convert(r, f"{hf[0]}[{i}]") for i, r in enumerate(rows)], {}
        files = [path] if path.is_file() else _split_files(path, split_words)
        if not files:
            raise UserError(f"no {'/'.join(split_words)} file in {path}.", f"Expected {layout}.")
        samples = [convert(r, f"{f}:{i + 1}") for f in files for i, r in enumerate(_records(f))]
        train = [] if path.is_file() else _split_files(path, ("train",))
        shots = [convert(r, f"{f}:{i + 1}") for f in train for i, r in enumerate(_records(f))]
        return samples, {"": shots}

    return load


def _split_files(folder: Path, words: tuple[str, ...]) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in (".jsonl", ".json", ".parquet", ".csv")
        and any(w in p.name.lower() for w in words)
        and "label" not in p.name.lower()
    )


def _records(f: Path) -> list[dict[str, Any]]:
    """The file's records; PIQA's official labels sit in a separate <split>-labels.lst, one per line."""
    rows = ds.read_records(f)
    labels = f.with_name(f.stem + "-labels.lst")
    if labels.is_file():
        values = [v.strip() for v in labels.read_text(encoding="utf-8").splitlines() if v.strip()]
        if len(values) != len(rows):
            raise UserError(
                f"{labels}: {len(values)} labels for {len(rows)} records in {f}.", "Use the matching files."
            )
        rows = [{**r, "label": v} for r, v in zip(rows, values, strict=True)]
    return rows


def _index(value: Any, n: int, where: str, one_based: bool = False) -> int:
    try:
        i = int(str(value).strip()) - one_based
    except ValueError:
        i = -1
    if not 0 <= i < n:
        allowed = ", ".join(str(k + one_based) for k in range(n))
        raise UserError(f"{where}: label {value!r} is not one of {allowed}.", "Fix the record.")
    return i


def _hellaswag_clean(text: str) -> str:
    """lm-eval's hellaswag preprocess: WikiHow's bracketed artefacts removed."""
    import re

    text = text.strip().replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")
