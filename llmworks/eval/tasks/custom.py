"""Custom tasks: a YAML that describes a JSONL file, rule metrics and optional judge grading."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmworks.errors import UserError
from llmworks.eval import datasets as ds
from llmworks.eval import metrics as M
from llmworks.eval.tasks.base import Env, Request, Scored, Task
from llmworks.eval.tasks.stops import GEN_STOP

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
    formulation = "generate"
    reference = "custom task YAML"

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
        """Means (an unparsed judge reply has no score), and the number of unparsed judge replies."""
        out = super().aggregate(scored)
        if "judge_unparsed" in out:
            out["judge_unparsed"] = sum(s.metrics.get("judge_unparsed", 0.0) for s in scored)
        return out

    def stderr(self, scored: list[Scored]) -> dict[str, float | None]:
        return {k: v for k, v in super().stderr(scored).items() if k != "judge_unparsed"}  # a count

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
