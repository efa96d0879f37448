"""Task kinds (multiple choice, math, custom YAML, code, needle in a haystack) and the registry of names.

`--tasks` takes registry names (`mmlu`, `gsm8k`, `smoke`, ...), `name=PATH` to point a benchmark at its
files, or the path of a custom task's YAML.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmworks.errors import UserError
from llmworks.eval import datasets as ds
from llmworks.eval import metrics as M
from llmworks.eval.task import Env, Request, Scored, Task

GEN_STOP = ("</s>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>")

# -- multiple choice --------------------------------------------------------------------------------


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
    from llmworks.data.demo import SENTIMENT_PROMPT, sentiment_records

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


# -- math -------------------------------------------------------------------------------------------


@dataclass
class Math(Task):
    """GSM8K layout ({"question", "answer": "... #### n"}); strict and flexible extraction, both reported."""

    name: str
    test: Path
    train: Path | None = None
    max_tokens: int = 256
    kind: str = "math"

    def samples(self) -> list[dict[str, Any]]:
        rows = ds.read_records(self.test)
        for i, r in enumerate(rows):
            ds.require_fields(r, ("question", "answer"), f"{self.test}:{i + 1}")
            r.setdefault("id", str(i))
        self._shots = ds.read_records(self.train) if self.train else []
        return rows

    def requests(self, sample: dict[str, Any], env: Env) -> list[Request]:
        shots = "".join(
            f"Question: {s['question']}\nAnswer: {s['answer']}\n\n" for s in self._shots[: env.shots]
        )
        text = f"{shots}Question: {sample['question']}\nAnswer:"
        if env.chat:
            instruction = (
                "Solve it step by step, then give the final answer on its own line as '#### <number>'."
            )
            return [
                Request.chat(
                    [{"role": "user", "content": f"{text}\n\n{instruction}"}], max_tokens=self.max_tokens
                )
            ]
        return [Request("complete", text, max_tokens=self.max_tokens, stop=("Question:", *GEN_STOP))]

    def score(self, sample: dict[str, Any], outputs: list[Any], env: Env) -> Scored:
        out = outputs[0] or ""
        target = sample["answer"].split("####")[-1].strip()
        strict, flexible = M.extract_strict(out), M.extract_flexible(out)
        return Scored(
            {
                "strict_match": float(M.math_equal(strict, target)),
                "flexible_extract": float(M.math_equal(flexible, target)),
            },
            target,
            {"strict": strict, "flexible": flexible},
        )

    def info(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens}


def gsm8k(path: Path | None, name: str = "gsm8k", max_tokens: int = 256) -> Math:
    layout = "test.jsonl (and train.jsonl for few-shot) with question, answer ending '#### n'"
    if path is None:
        raise ds.missing_data(name, layout, None)
    test = path if path.is_file() else path / "test.jsonl"
    if not test.is_file():
        raise UserError(f"{name}: no {test}.", f"Expected {layout}.")
    train = test.with_name("train.jsonl")
    return Math(name, test, train if train.is_file() else None, max_tokens)


# -- custom (YAML + JSONL, rule metrics, optional judge) ----------------------------------------------

CUSTOM_KEYS = {
    "name",
    "data",
    "prompt",
    "target",
    "metrics",
    "regex",
    "system",
    "max_tokens",
    "stop",
    "rubric",
    "reference",
}


@dataclass
class Custom(Task):
    """A JSONL file described by a YAML: a prompt and target template per record, rule metrics, and "judge"
    for single-answer grading (1-10) by the judge model against the YAML's rubric."""

    name: str
    data: Path
    prompt_template: str
    target_template: str = ""
    metric_names: tuple[str, ...] = ("exact_match",)
    regex: str | None = None
    system: str | None = None
    max_tokens: int = 128
    stop: tuple[str, ...] = ()
    rubric: str | None = None
    reference: str | None = None
    kind: str = "custom"

    def samples(self) -> list[dict[str, Any]]:
        rows = ds.read_records(self.data)
        for i, r in enumerate(rows):
            where = f"{self.data}:{i + 1}"
            r["_prompt"] = _fill(self.prompt_template, r, where)
            r["_target"] = _fill(self.target_template, r, where)
            r["_reference"] = _fill(self.reference, r, where) if self.reference else None
            r.setdefault("id", str(i))
        return rows

    def requests(self, sample: dict[str, Any], env: Env) -> list[Request]:
        if "judge" in self.metric_names and env.judge is None:
            raise UserError(
                f"task {self.name} is graded by a judge, and none was given.", "Pass --judge MODEL|URL."
            )
        if env.chat:
            msgs = ([{"role": "system", "content": self.system}] if self.system else []) + [
                {"role": "user", "content": sample["_prompt"]}
            ]
            return [Request.chat(msgs, max_tokens=self.max_tokens, stop=self.stop)]
        return [
            Request("complete", sample["_prompt"], max_tokens=self.max_tokens, stop=(*self.stop, *GEN_STOP))
        ]

    def score(self, sample: dict[str, Any], outputs: list[Any], env: Env) -> Scored:
        from llmworks.eval import judge

        pred = (outputs[0] or "").strip()
        scores = {
            m: M.RULES[m](pred, sample["_target"], {"regex": self.regex})
            for m in self.metric_names
            if m != "judge"
        }
        extra: dict[str, Any] = {}
        if "judge" in self.metric_names:
            assert env.judge is not None
            g = judge.grade(env.judge, sample["_prompt"], pred, self.rubric, sample["_reference"])
            extra["judge"] = {"raw": g["raw"], "score": g["score"]}
            scores["judge_unparsed"] = float(g["score"] is None)
            if g["score"] is not None:
                scores["judge"] = float(g["score"])
        return Scored(scores, sample["_target"], pred, extra)

    def aggregate(self, scored: list[Scored]) -> dict[str, float]:
        """Means over the samples that have each metric (an unparsed judge reply has no score), and the
        number of unparsed judge replies."""
        out = {}
        for k in dict.fromkeys(k for s in scored for k in s.metrics):
            vals = [s.metrics[k] for s in scored if k in s.metrics]
            out[k] = sum(vals) if k == "judge_unparsed" else sum(vals) / len(vals)
        return out

    def info(self) -> dict[str, Any]:
        return {"metrics": list(self.metric_names), "data": str(self.data)}


def custom(yaml_path: Path) -> Custom:
    import yaml

    try:
        spec = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"cannot read task file {yaml_path} ({e}).", "Fix the YAML.") from None
    if not isinstance(spec, dict):
        raise UserError(
            f"{yaml_path}: expected a mapping.", "See llmworks/eval/data/smoke/custom/capitals.yaml."
        )
    errors = [f"unknown key '{k}'" for k in spec if k not in CUSTOM_KEYS]
    errors += [f"missing '{k}'" for k in ("data", "prompt") if k not in spec]
    metrics = tuple(spec.get("metrics") or ["exact_match"])
    errors += [f"unknown metric '{m}'" for m in metrics if m not in M.RULES and m != "judge"]
    if "regex" in metrics and not spec.get("regex"):
        errors.append("metric 'regex' needs a 'regex' pattern")
    if errors:
        raise UserError(
            f"{yaml_path}: {'; '.join(errors)}.",
            f"Keys: {', '.join(sorted(CUSTOM_KEYS))}; metrics: {', '.join([*M.RULES, 'judge'])}.",
        )
    return Custom(
        name=str(spec.get("name") or yaml_path.stem),
        data=(yaml_path.parent / spec["data"]).resolve(),
        prompt_template=spec["prompt"],
        target_template=spec.get("target", ""),
        metric_names=metrics,
        regex=spec.get("regex"),
        system=spec.get("system"),
        max_tokens=int(spec.get("max_tokens", 128)),
        stop=tuple(spec.get("stop") or ()),
        rubric=spec.get("rubric"),
        reference=spec.get("reference"),
    )


def _fill(template: str, row: dict[str, Any], where: str) -> str:
    try:
        return template.format_map(row)
    except (KeyError, IndexError) as e:
        raise UserError(
            f"{where}: the template needs field {e}, which the record lacks.", "Fix the record."
        ) from None


# -- code -------------------------------------------------------------------------------------------

HUMANEVAL_STOP = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\n```")


@dataclass
class Code(Task):
    """HumanEval: n completions per problem, run against its tests in a sandboxed subprocess; pass@k."""

    name: str
    path: str | None = None
    ids: tuple[str, ...] = ()
    n: int = 1
    ks: tuple[int, ...] = (1,)
    max_tokens: int = 384
    kind: str = "code"

    def samples(self) -> list[dict[str, Any]]:
        from llmworks.eval.code_exec import load_humaneval

        problems = load_humaneval(self.path)
        chosen = [problems[i] for i in self.ids] if self.ids else list(problems.values())
        return [{"id": p["task_id"], **p} for p in chosen]

    def requests(self, sample: dict[str, Any], env: Env) -> list[Request]:
        temperature = 0.0 if self.n == 1 else 0.8  # sampled when pass@k needs distinct samples
        return [
            Request(
                "complete",
                sample["prompt"],
                max_tokens=self.max_tokens,
                temperature=temperature,
                stop=HUMANEVAL_STOP,
                seed=i,
            )
            for i in range(self.n)
        ]

    def score(self, sample: dict[str, Any], outputs: list[Any], env: Env) -> Scored:
        from llmworks.eval.code_exec import evaluate_samples

        problem = {k: v for k, v in sample.items() if k != "id"}
        done = evaluate_samples(
            {sample["task_id"]: problem},
            [{"task_id": sample["task_id"], "completion": o or ""} for o in outputs],
            self.ks,
        )
        metrics = {f"pass@{k}": v for k, v in done["pass@k"].items()}
        return Scored(metrics, sample["canonical_solution"], [r["result"] for r in done["results"]])

    def info(self) -> dict[str, Any]:
        return {"n": self.n, "ks": list(self.ks), "sandbox": "subprocess, time and memory limits, no network"}


# -- needle in a haystack -----------------------------------------------------------------------------

NEEDLE = "The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day."
QUESTION = "What is the best thing to do in San Francisco? Answer in one sentence."
EXPECTED = "eat a sandwich and sit in Dolores Park on a sunny day"


@dataclass
class Needle(Task):
    """A needle sentence hidden at each depth of haystacks of each length; recall of its key words."""

    name: str
    context_lengths: tuple[int, ...]
    depths: tuple[float, ...]
    haystack_path: str | None = None
    kind: str = "niah"

    def samples(self) -> list[dict[str, Any]]:
        from llmworks.eval.niah import grid, load_haystack

        self._haystack = load_haystack(self.haystack_path)
        return [
            {"id": f"{n}@{d:.0%}", "context_len": n, "depth": d}
            for n, d in grid(self.context_lengths, self.depths)
        ]

    def requests(self, sample: dict[str, Any], env: Env) -> list[Request]:
        from llmworks.eval.niah import build_case

        n = sample["context_len"]
        if env.context_length and n + 128 > env.context_length:
            raise UserError(
                f"{self.name}: a {n}-token haystack does not fit the model's {env.context_length}-token context.",
                "Use smaller context lengths, or load the model with a larger --ctx.",
            )
        prompt = build_case(env.count_tokens, self._haystack, n, sample["depth"], NEEDLE, QUESTION)
        if env.chat:
            return [Request.chat([{"role": "user", "content": prompt}], max_tokens=48)]
        return [Request("complete", prompt + "\nAnswer:", max_tokens=48, stop=("\n\n", *GEN_STOP))]

    def score(self, sample: dict[str, Any], outputs: list[Any], env: Env) -> Scored:
        from llmworks.eval.niah import score_answer

        answer = outputs[0] or ""
        return Scored({"score": score_answer(answer, EXPECTED)}, EXPECTED, answer.strip())

    def info(self) -> dict[str, Any]:
        return {"context_lengths": list(self.context_lengths), "depths": list(self.depths)}


# -- the registry -------------------------------------------------------------------------------------

TaskFactory = Callable[[Path | None], Task]

TASKS: dict[str, TaskFactory] = {
    "mmlu": mmlu,
    "ceval": ceval,
    "cmmlu": cmmlu,
    "arc": arc,
    "gsm8k": gsm8k,
    "humaneval": lambda p: Code("humaneval", str(p) if p else None),
    "niah": lambda p: Needle("niah", (1024, 2048, 4096), (0.0, 0.25, 0.5, 0.75, 1.0), str(p) if p else None),
    "sentiment": lambda p: sentiment(),
    # The smoke set: small, written for this project, shipped for CI and the demo.
    "mmlu-smoke": lambda p: mmlu(p or ds.SMOKE / "mmlu", "mmlu-smoke"),
    "ceval-smoke": lambda p: ceval(p or ds.SMOKE / "ceval", "ceval-smoke"),
    "gsm8k-smoke": lambda p: gsm8k(p or ds.SMOKE / "gsm8k", "gsm8k-smoke", max_tokens=96),
    "custom-smoke": lambda p: custom(p or ds.SMOKE / "custom" / "capitals.yaml"),
    "general-smoke": lambda p: custom(p or ds.SMOKE / "custom" / "general.yaml"),
    "humaneval-smoke": lambda p: Code(
        "humaneval-smoke", None, ("HumanEval/0", "HumanEval/53"), max_tokens=128
    ),
    "niah-smoke": lambda p: Needle("niah-smoke", (256, 512), (0.0, 0.5, 1.0), str(p) if p else None),
}
GROUPS: dict[str, tuple[str, ...]] = {
    "smoke": (
        "mmlu-smoke",
        "ceval-smoke",
        "gsm8k-smoke",
        "custom-smoke",
        "general-smoke",
        "humaneval-smoke",
        "niah-smoke",
    ),
}


def resolve_tasks(specs: list[str]) -> list[Task]:
    """Tasks for `--tasks` entries: NAME, NAME=PATH, a group (smoke), or a custom task's YAML path."""
    out: list[Task] = []
    for spec in specs:
        name, _, path = spec.strip().partition("=")
        if name in GROUPS and not path:
            out += resolve_tasks(list(GROUPS[name]))
        elif name in TASKS:
            located = ds.locate(name, path or None, "Point it at the benchmark's folder or file.")
            out.append(TASKS[name](located))
        elif name.endswith((".yaml", ".yml")) and Path(name).is_file():
            out.append(custom(Path(name)))
        else:
            raise UserError(
                f"unknown task '{name}'.",
                f"Choose from: {', '.join([*TASKS, *GROUPS])}, or give a custom task's YAML file.",
            )
    names = [t.name for t in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UserError(f"task(s) given twice: {', '.join(dupes)}.", "List each task once.")
    return out
