"""Multiple-choice tasks, each scored the way a named reference harness scores it (`reference`).

Two formulations (a task's `formulation`), both as lm-evaluation-harness runs them:
- letters: the options are listed under the question ("A. ...") and the model scores the letter after
  "Answer:" (" A"): lm-eval's mmlu, ceval-valid and cmmlu (OpenCompass' prompts have the same layout).
- cloze: the model scores each option's own text after the question (" Paris"): lm-eval's arc_easy /
  arc_challenge, hellaswag, piqa, boolq, truthfulqa_mc1/mc2. Winogrande is "partial" cloze: each option
  fills the blank, and the model scores the rest of the sentence after it.
Every continuation follows its context after one space (lm-eval's target_delimiter). acc picks the option with
the highest log-likelihood, acc_norm the highest per character of the option (lm-eval's acc_norm). Few-shot
examples are the first `shots` of the dev/train split, each followed by its answer and a blank line.

Log-likelihood prompts are plain text unless the run asks for the chat template (`--chat`). Over generation
(a model that cannot be scored, or `--method generate`) every task lists its options with letters and the
option a short answer names is taken (acc only); answer-word tasks (boolq, sentiment) look for the word.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from llmworks.eval import metrics as M
from llmworks.eval.tasks.base import Env, Request, Scored, Task
from llmworks.eval.tasks.stops import GEN_STOP

Loader = Callable[[], tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]]
"""-> (samples, few-shot examples by subject ("" when the benchmark has none)).

A sample: id, question, choices (option texts), answer (index), and optionally subject and the fields the
task's `template` names."""

LETTERED = "{question}\n{options}\n{answer_word}"
"""The letters formulation's context (lm-eval mmlu: "{{question.strip()}}\\nA. ...\\nAnswer:")."""


@dataclass
class MultipleChoice(Task):
    name: str
    load: Loader
    formulation: Literal["letters", "cloze", "partial"] = "letters"
    reference: str = ""
    """The harness task whose prompt and metrics this follows, e.g. "lm-eval arc_easy"."""
    template: str = LETTERED
    """The question's context, filled from the sample: {question}, {options} (letters: "A. ..." lines),
    {answer_word}, or any other field of the sample (cloze: "Question: {question}\\nAnswer:")."""
    head: str = ""
    """A description before the examples, with {subject} (lm-eval's description); none without a subject."""
    subjects: dict[str, str] = field(default_factory=dict)
    """Subject names as the description gives them (default: the subject with spaces)."""
    answer_word: str = "Answer:"
    words: bool = False
    """The options are answer words (yes/no, positive/negative): generation looks for the word."""
    metric_names: tuple[str, ...] = ("acc", "acc_norm")
    kind: str = "multiple_choice"
    method: Any = None
    _fewshot: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def samples(self) -> list[dict[str, Any]]:
        samples, self._fewshot = self.load()
        return samples

    # -- what the model scores --

    def pairs(self, sample: dict[str, Any]) -> list[tuple[str, str]]:
        """(context, continuation) per option, before the description and the few-shot examples."""
        if self.formulation == "letters":
            context = self._lettered(sample)
            return [(context, " " + lab) for lab in _letters(sample)]
        context = self.template.format_map(sample)
        return [(context, " " + c) for c in sample["choices"]]

    def example(self, sample: dict[str, Any]) -> str:
        """A solved few-shot example: the context and the right continuation."""
        context, continuation = self.pairs(sample)[sample["answer"]]
        return context + continuation

    def prefix(self, sample: dict[str, Any], env: Env, lettered: bool = False) -> str:
        """The description and the few-shot examples that come before the question."""
        subject = sample.get("subject") or ""
        head = (
            self.head.format(subject=self.subjects.get(subject, subject.replace("_", " "))) if subject else ""
        )
        shots = self._fewshot.get(subject, [])[: env.shots]
        solved = [
            self._lettered(s) + " " + _letters(s)[s["answer"]] if lettered else self.example(s) for s in shots
        ]
        return head + "".join(s + "\n\n" for s in solved)

    def _lettered(self, sample: dict[str, Any]) -> str:
        """The question with its options lettered: the letters formulation's context, and every task's
        prompt for generation."""
        template = self.template if self.formulation == "letters" else LETTERED
        options = "\n".join(f"{lab}. {c}" for lab, c in zip(_letters(sample), sample["choices"], strict=True))
        fields = {**sample, "question": sample["question"].strip(), "options": options}
        return template.format_map({**fields, "answer_word": self.answer_word})

    # -- the Task seam --

    def requests(self, sample: dict[str, Any], env: Env) -> list[Request]:
        self.method = env.method()
        if self.method == "loglikelihood":
            prefix = self.prefix(sample, env)
            out = []
            for context, continuation in self.pairs(sample):
                text = prefix + context
                if env.chat_scoring:  # the question as the user's turn, the option as the reply
                    rendered = env.render([{"role": "user", "content": text}])
                    text, continuation = rendered or text, continuation.lstrip() if rendered else continuation
                out.append(Request("loglikelihood", text, continuation))
            return out
        if self.words:
            text = self.prefix(sample, env) + self.template.format_map(sample)
        else:
            text = self.prefix(sample, env, lettered=True) + self._lettered(sample)
        if env.chat:
            return [Request.chat([{"role": "user", "content": text}], max_tokens=16)]
        return [Request("complete", text, max_tokens=8, stop=("\n\n", *GEN_STOP))]

    def score(self, sample: dict[str, Any], outputs: list[Any], env: Env) -> Scored:
        options = list(sample["choices"]) if self.words else _letters(sample)
        target = options[sample["answer"]]
        if env.method() != "loglikelihood":
            picked = M.extract_choice(outputs[0] or "", options)
            return Scored({"acc": float(picked == target)}, target, picked)
        if any(o is None for o in outputs):
            return Scored(dict.fromkeys(self.metric_names, 0.0), target, None)
        lengths = [len(cont) - 1 for _, cont in self.pairs(sample)]  # the option, without the delimiter
        best = _argmax(outputs)
        norm = _argmax([lp / max(1, n) for lp, n in zip(outputs, lengths, strict=True)])
        metrics = {"acc": float(best == sample["answer"]), "acc_norm": float(norm == sample["answer"])}
        return Scored(
            {k: metrics[k] for k in self.metric_names},
            sample["choices"][sample["answer"]],
            sample["choices"][best],
            {"logprobs": outputs},
        )

    def info(self) -> dict[str, Any]:
        return {"metrics": list(self.metric_names)}


@dataclass
class Partial(MultipleChoice):
    """Winogrande: each option fills the blank ("_") of the sentence, and the model scores the rest of the
    sentence after it (lm-eval's winogrande: the contexts differ, the continuation is shared)."""

    formulation: Literal["letters", "cloze", "partial"] = "partial"
    metric_names: tuple[str, ...] = ("acc",)

    def pairs(self, sample: dict[str, Any]) -> list[tuple[str, str]]:
        sentence = sample["question"]
        blank = sentence.index("_")
        rest = " " + sentence[blank + 1 :].strip()
        return [(sentence[:blank] + option, rest) for option in sample["choices"]]

    def score(self, sample: dict[str, Any], outputs: list[Any], env: Env) -> Scored:
        if env.method() != "loglikelihood" or any(o is None for o in outputs):
            return super().score(sample, outputs, env)
        best = _argmax(outputs)
        return Scored(
            {"acc": float(best == sample["answer"])},
            sample["choices"][sample["answer"]],
            sample["choices"][best],
            {"logprobs": outputs},
        )


@dataclass
class TruthfulMC(MultipleChoice):
    """TruthfulQA multiple choice, both of lm-eval's scores from one prompt: mc1 (truthfulqa_mc1: the single
    true answer is the likeliest of its set) and mc2 (truthfulqa_mc2: the probability mass of the true answers
    in the second set, normalised over that set). A sample's `choices`/`answer` are the mc1 set; `mc2`
    holds (answer, is_true) pairs."""

    formulation: Literal["letters", "cloze", "partial"] = "cloze"
    metric_names: tuple[str, ...] = ("mc1", "mc2")

    def pairs(self, sample: dict[str, Any]) -> list[tuple[str, str]]:
        context = self.template.format_map(sample)
        return [(context, " " + c) for c in [*sample["choices"], *(a for a, _ in sample["mc2"])]]

    def example(self, sample: dict[str, Any]) -> str:
        context = self.template.format_map(sample)
        return context + " " + sample["choices"][sample["answer"]]

    def score(self, sample: dict[str, Any], outputs: list[Any], env: Env) -> Scored:
        if env.method() != "loglikelihood":
            s = super().score(sample, outputs, env)
            return Scored({"mc1": s.metrics["acc"]}, s.target, s.extracted)
        n1 = len(sample["choices"])
        target = sample["choices"][sample["answer"]]
        if any(o is None for o in outputs):
            return Scored({"mc1": 0.0, "mc2": 0.0}, target, None)
        mc1, mc2 = outputs[:n1], outputs[n1:]
        top = max(mc2)
        probs = [math.exp(lp - top) for lp in mc2]
        true_mass = sum(p for p, (_, ok) in zip(probs, sample["mc2"], strict=True) if ok) / sum(probs)
        best = _argmax(mc1)
        return Scored(
            {"mc1": float(best == sample["answer"]), "mc2": true_mass},
            target,
            sample["choices"][best],
            {"logprobs": outputs},
        )


def _letters(sample: dict[str, Any]) -> list[str]:
    return list(string.ascii_uppercase[: len(sample["choices"])])


def _argmax(values: list[float]) -> int:
    """The first index of the largest value (numpy's argmax, as lm-eval picks)."""
    return max(range(len(values)), key=lambda i: values[i])
