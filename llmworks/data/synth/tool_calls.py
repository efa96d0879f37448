"""Tool-calling training data from tool schemas: requests that need one call, two calls in sequence, no call,
and multi-turn follow-ups, in the messages + `tool_calls` + `tool` format `llmworks train` reads.

Requests come from templates (`tool_templates`: the built-ins' own, and generic ones built from any schema);
with a model, each single call may be replaced by one the model writes itself from two template examples
(Self-Instruct). Every call — template or model — is validated against its tool's JSON Schema and checked
to use the values the request states; a call that fails is rejected and counted. Results come from running
the tool where a runner is given (the built-ins: offline and safe), otherwise they are synthesized from the
call. Plain answers are the base model's own (self-distillation, as `builtin:general`). Exact duplicates
are dropped with the data stage's dedupe key.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmworks.client import Client
from llmworks.data.clean import exact_key
from llmworks.data.config import TOOL_CALL_KINDS
from llmworks.data.synth.notes import with_note
from llmworks.errors import UserError

__all__ = [
    "KINDS",
    "NoTemplate",
    "Rejected",
    "SynthReport",
    "ToolSpec",
    "call_problem",
    "near_misses",
    "read_tool_file",
    "synth_tool_calls",
]

KINDS = TOOL_CALL_KINDS
MAX_OFFERED = 4
"""Tools on offer in one record at most: the needed ones plus others picked at random (a catalog of a hundred
tools would not fit the context, and BFCL offers one to four)."""
Runner = Callable[[dict[str, Any]], tuple[str, bool]]
"""Runs a call: (result text, ok)."""

# String arguments the request need not spell out: the assistant writes them (code, a formula, a title).
DERIVED = {"code", "expression", "title", "query"}
MAX_FAILING = 20
"""A kind that fails this many times in a row is given up (the others go on)."""
SLOT = re.compile(r"\{(\w+)\}")
_NUMBER = re.compile(r"(?<![\w.-])-?\d+(?:\.\d+)?")  # not the 2 of chart-2.png


@dataclass
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]
    run: Runner | None = None
    """None: results are synthesized from the call (the tool is not run)."""
    builtin: bool = False
    """A built-in agent tool: its own templates (others get generic ones from the schema)."""
    requests: list[str] = field(default_factory=list)
    """Requests that need this tool, with {parameter} slots (a tools file's `requests`; else generic)."""
    values: dict[str, list[Any]] = field(default_factory=dict)
    """Values for the slots (a tools file's `values`)."""

    def brief(self) -> ToolSpec:
        """This tool with its description cut to the first sentence and no parameter descriptions: a schema's
        words are prompt tokens in every request and every training record, which a small model pays for in
        context and training time (the demo's three tools: 465 tokens of tools block, 288 brief)."""
        first = re.split(r"(?<=[.;:])\s", self.description.strip(), maxsplit=1)[0].rstrip(".;:") + "."
        params = copy.deepcopy(self.parameters)
        for prop in params.get("properties", {}).values():
            if isinstance(prop, dict):
                prop.pop("description", None)
        return dataclasses.replace(self, description=first, parameters=params)

    def openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


@dataclass
class SynthReport:
    kinds: Counter[str] = field(default_factory=Counter)
    calls_accepted: int = 0
    calls_rejected: Counter[str] = field(default_factory=Counter)
    model_calls_accepted: int = 0
    model_calls_rejected: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    calls_in_output: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    """Examples dropped for another reason (a tool error, a plain answer cut off)."""
    results: dict[str, str] = field(default_factory=dict)
    """tool -> "run" or "synthesized"."""
    seconds: float = 0.0

    @property
    def examples(self) -> int:
        return sum(self.kinds.values())

    def manifest(self) -> dict[str, Any]:
        made = self.calls_accepted + sum(self.calls_rejected.values())
        model = self.model_calls_accepted + sum(self.model_calls_rejected.values())
        return {
            "examples": self.examples,
            "kinds": {k: self.kinds[k] for k in KINDS},
            "calls": {
                "accepted": self.calls_accepted,
                "rejected": sum(self.calls_rejected.values()),
                "rejected_by": dict(self.calls_rejected.most_common()),
                "acceptance_rate": round(self.calls_accepted / made, 4) if made else None,
            },
            "model_calls": {
                "accepted": self.model_calls_accepted,
                "rejected": sum(self.model_calls_rejected.values()),
                "rejected_by": dict(self.model_calls_rejected.most_common()),
                "acceptance_rate": round(self.model_calls_accepted / model, 4) if model else None,
            },
            "tool_calls_in_output": self.calls_in_output,
            "duplicates_removed": self.duplicates,
            "dropped": dict(self.failed.most_common()),
            "tool_results": self.results,
            "seconds": round(self.seconds, 2),
            "examples_per_second": round(self.examples / self.seconds, 3) if self.seconds else None,
        }


class Rejected(Exception):
    """A call (or an example) that cannot be used; the message is the reason, counted in the report."""


class NoTemplate(Rejected):
    """No template of this kind fits these tools (two calls in sequence need two tools that chain)."""


# -- tool files --------------------------------------------------------------------------------------


def read_tool_file(path: Path | str) -> list[ToolSpec]:
    """Tools from a YAML or JSON list in OpenAI `tools` format (or bare function objects). An entry may add
    `requests` (user requests with {parameter} slots) and `values` (per parameter, the values to fill them
    with): natural requests instead of generic ones. Every bad tool is reported in one UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such tools file: {path}.", "Give a YAML/JSON list of OpenAI tools, or builtin.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))  # YAML is a superset of JSON
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        why = getattr(e, "problem", None) or "cannot be parsed"
        raise UserError(f"{path} is not valid YAML/JSON{at}: {why}.", "Fix the file.") from None
    if isinstance(data, dict) and isinstance(data.get("tools"), list):
        data = data["tools"]
    if not isinstance(data, list) or not data:
        raise UserError(
            f"{path} must hold a non-empty list of tools.",
            'Write [{"type": "function", "function": {"name", "description", "parameters"}}, ...].',
        )
    specs, problems = [], []
    for i, entry in enumerate(data, 1):
        try:
            specs.append(_spec(entry, f"tool {i}"))
        except Rejected as e:
            problems.append(str(e))
    names = [s.name for s in specs]
    problems += [f"tool name {n!r} appears twice" for n in sorted({n for n in names if names.count(n) > 1})]
    if problems:
        raise UserError(
            f"{path}: {'; '.join(problems)}.",
            "Each tool needs a name, a description and parameters that are a JSON Schema of type object "
            "(https://json-schema.org).",
        )
    return specs


def _spec(entry: Any, where: str) -> ToolSpec:
    import jsonschema

    fn = entry.get("function", entry) if isinstance(entry, dict) else None
    if not isinstance(fn, dict):
        raise Rejected(f"{where} is not an object")
    name = fn.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]{0,63}", name):
        raise Rejected(f"{where} has no valid name (letters, digits, _ and -)")
    where = f"{where} ({name})"
    desc = fn.get("description")
    if not isinstance(desc, str) or not desc.strip():
        raise Rejected(f"{where} has no description")
    params = fn.get("parameters", {"type": "object", "properties": {}})
    if not isinstance(params, dict) or params.get("type") != "object":
        raise Rejected(f"{where}: parameters must be a JSON Schema with type: object")
    try:
        jsonschema.validators.validator_for(params).check_schema(params)
    except jsonschema.SchemaError as e:
        at = "/".join(str(p) for p in e.path) or "(top)"
        raise Rejected(f"{where}: parameters are not valid JSON Schema at {at}: {e.message}") from None
    requests, values = _request_templates(entry, params, where)
    return ToolSpec(name, desc.strip(), params, requests=requests, values=values)


def _request_templates(entry: Any, params: dict[str, Any], where: str) -> tuple[list[str], dict[str, list]]:
    requests, values = entry.get("requests", []), entry.get("values", {})
    if not isinstance(requests, list) or not all(isinstance(r, str) and r.strip() for r in requests):
        raise Rejected(f"{where}: requests must be a list of texts")
    if not isinstance(values, dict) or not all(isinstance(v, list) and v for v in values.values()):
        raise Rejected(f"{where}: values must map parameters to non-empty lists")
    props = params.get("properties", {})
    for r in requests:
        for slot in SLOT.findall(r):
            if slot not in props or slot not in values:
                raise Rejected(f"{where}: request slot {{{slot}}} is not a parameter with values")
    return requests, values


# -- checking calls ----------------------------------------------------------------------------------


def call_problem(spec: ToolSpec, args: Any, request: str, numbers_in: str | None = None) -> str | None:
    """Why a call cannot be trained on, or None: it must match the schema, and use the values the request
    states (a number the user gave, the text to read): a call that invents them teaches the model to.
    `numbers_in`: the part of the request whose numbers must all be used (default: all of it)."""
    import jsonschema

    if not isinstance(args, dict):
        return "arguments not an object"
    errors = list(jsonschema.validators.validator_for(spec.parameters)(spec.parameters).iter_errors(args))
    if errors:
        return "schema: " + errors[0].validator  # type: ignore[no-any-return]
    from llmworks.data.synth import spoken

    props = spec.parameters.get("properties", {})
    # A value the request says in words ("March 14, 2025" for 2025-03-14): its words, numbers and all, are
    # the value's; the rest of the request must still be used.
    worded = {}
    for key, value in args.items():
        for form in spoken.forms(props.get(key), key, value):
            if _fold(form) in _fold(request):
                worded[key] = form
                break
    rest = request if numbers_in is None else numbers_in
    for form in worded.values():
        rest = rest.replace(form, " ")
    text = json.dumps(args, ensure_ascii=False)
    have = {float(n) for n in _NUMBER.findall(text)}
    if any(float(n) not in have for n in _NUMBER.findall(rest)):
        return "request's numbers not used"
    for key, value in args.items():
        free = isinstance(value, str) and key not in DERIVED and "enum" not in props.get(key, {})
        if free and key not in worded and _fold(value) not in _fold(request):
            return "value not in the request"
    return None


def _fold(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


# -- synthesis ---------------------------------------------------------------------------------------


@dataclass
class _Session:
    """One run: the tools, the random source, the report; makes calls and numbers them."""

    tools: dict[str, ToolSpec]
    rng: random.Random
    report: SynthReport
    n_calls: int = 0
    answers: dict[str, str | None] = field(default_factory=dict)
    """Plain answers by prompt: greedy, so each prompt is asked once."""
    offer_all: bool = False
    """Offer every tool in every record (but an unmatched request's): for a small tool set offered whole."""
    singles: Counter[str] = field(default_factory=Counter)
    """Single calls made per tool, so each tool gets its share."""
    asked: list[tuple[str, str]] = field(default_factory=list)
    """(tool, request) of the records that called a tool, for unmatched requests to ask again without it."""

    def call(
        self, name: str, args: dict[str, Any], request: str, numbers_in: str | None = None
    ) -> tuple[dict[str, Any], dict[str, Any], str]:
        """(the assistant's call message, the tool's message, the result text); Rejected if unusable."""
        spec = self.tools[name]
        problem = call_problem(spec, args, request, numbers_in)
        if problem:
            self.report.calls_rejected[problem] += 1
            raise Rejected(problem)
        self.report.calls_accepted += 1
        if spec.run is not None:
            result, ok = spec.run(args)
            if not ok:
                raise Rejected(f"{name} failed")
        else:
            result = synthesized_result(spec, args)
        self.n_calls += 1
        cid = f"call_{self.n_calls}"
        fn = {"name": name, "arguments": json.dumps(args, ensure_ascii=False)}
        return (
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": cid, "type": "function", "function": fn}],
            },
            {"role": "tool", "tool_call_id": cid, "name": name, "content": result},
            result,
        )

    def offered(self, needed: Sequence[str], unwanted: str | None = None) -> list[dict[str, Any]]:
        """The tools the record offers: the needed ones and others, one to MAX_OFFERED in all (BFCL offers
        one tool to a simple request, two to four to a multiple one), never `unwanted`, shuffled, so the model
        learns to choose among whatever tools it is given. Half the time the others are the tools most like
        the one the request needs (a BMI tool for a triangle's area, as BFCL's irrelevance category offers):
        beside an unmatched request, so that "numbers in the request, a tool on offer: call it" fails; and
        beside the needed tool itself, so that lookalikes on offer are no cue to decline (recipe v2 gave them
        only to unmatched requests, and declined 150 of BFCL's 400 simple ones) and the model learns to pick
        the right one of several alike (BFCL's multiple category)."""
        if self.offer_all:  # in their given order, as a fixed tool set is offered at inference
            return [self.tools[n].openai() for n in self.tools if n != unwanted]
        others = [n for n in self.tools if n not in needed and n != unwanted]
        self.rng.shuffle(others)
        like = unwanted if unwanted is not None else next(iter(needed), None)
        if like is not None and self.rng.random() < 0.5:
            others = near_misses(self.tools[like], [self.tools[n] for n in others])
        total = self.rng.randint(max(1, len(needed)), max(MAX_OFFERED, len(needed)))
        names = list(dict.fromkeys([*needed, *others]))[:total]
        self.rng.shuffle(names)
        return [self.tools[n].openai() for n in names]


_NAME_VERBS = {"get", "calculate", "compute", "find", "search", "list", "check", "convert", "create", "set"}


def near_misses(wanted: ToolSpec, others: Sequence[ToolSpec]) -> list[str]:
    """`others` by how alike their words (description and parameter names) are to `wanted`'s, most alike
    first; a tool whose name shares a noun with `wanted`'s (get_weather_forecast beside get_current_weather)
    may well serve the request, so it is left out."""

    def words(t: ToolSpec) -> set[str]:
        return set(_fold(t.description).split()) | set(t.parameters.get("properties", {}))

    def nouns(t: ToolSpec) -> set[str]:
        return set(t.name.casefold().split("_")) - _NAME_VERBS

    mine = words(wanted)
    fair = [t for t in others if not nouns(t) & nouns(wanted)]
    return [t.name for t in sorted(fair, key=lambda t: -len(words(t) & mine) / len(words(t) | mine))]


def synthesized_result(spec: ToolSpec, args: Mapping[str, Any]) -> str:
    """A plausible result for a tool that is not run: it reports success and echoes what it was given."""
    return json.dumps({"status": "ok", "tool": spec.name, "arguments": dict(args)}, ensure_ascii=False)


def synth_tool_calls(
    tools: Sequence[ToolSpec],
    n: int,
    client: Client | None,
    report: SynthReport,
    paraphrase: bool = False,
    seed: int = 0,
    max_attempts: int | None = None,
    answer_tokens: int = 48,
    kinds: Sequence[str] = KINDS,
    offer_all: bool = False,
) -> Iterator[dict[str, Any]]:
    """Yield up to `n` distinct records ({"messages", "tools", "kind"}), the `kinds` in turn. `client`
    answers the no-tool requests (without one, that kind is not made) and, with `paraphrase`, writes calls.
    `offer_all` offers every tool in every record instead of a random few (a small, fixed tool set)."""
    from llmworks.data.synth import tool_templates as T

    if not tools:
        raise UserError("no tools to synthesize calls for.", "Give --tools builtin or a tools file.")
    session = _Session({t.name: t for t in tools}, random.Random(seed), report, offer_all=offer_all)
    for t in tools:
        report.results[t.name] = "run" if t.run is not None else "synthesized"
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise UserError(f"unknown kind(s): {', '.join(unknown)}.", f"Choose from {', '.join(KINDS)}.")
    wanted, weight = kinds, Counter(kinds)  # a kind named twice is made twice as often
    kinds = [
        k
        for k in KINDS
        if k in wanted and (k != "no_tool" or client is not None) and (k != "unmatched" or len(tools) > 1)
    ]
    # Each maker gives the record's messages and the tool it must not offer (an unmatched request's).
    makers: dict[str, Callable[[], tuple[list[dict[str, Any]], str | None]]] = {
        "single": lambda: (_single(session, client if paraphrase else None), None),
        "sequence": lambda: (T.sequence(session), None),
        "no_tool": lambda: (_no_tool(session, client, paraphrase, answer_tokens), None),  # type: ignore[arg-type]
        "unmatched": lambda: _unmatched(session),
        "follow_up": lambda: (T.follow_up(session), None),
    }
    seen: set[int] = set()
    failing: Counter[str] = Counter()  # failures in a row, per kind
    start, attempts = time.perf_counter(), 0
    max_attempts = max_attempts if max_attempts is not None else 5 * n
    while report.examples < n and attempts < max_attempts and kinds:
        kind = min(kinds, key=lambda k: report.kinds[k] / weight[k])  # in their shares whatever fails
        attempts += 1
        try:
            messages, unwanted = makers[kind]()
        except Rejected as e:
            report.failed[str(e)] += 1
            failing[kind] += 1
            if isinstance(e, NoTemplate) or failing[kind] >= MAX_FAILING:
                kinds.remove(kind)
            continue
        failing[kind] = 0
        needed = [c["function"]["name"] for m in messages for c in m.get("tool_calls", [])]
        offered = session.offered(needed, unwanted)
        if not offer_all:  # a fixed tool set is offered as it is written
            offered = with_note(offered, session.rng)
        if kind == "unmatched":
            messages[-1]["content"] = decline(offered)
        key = exact_key(_dedupe_text(messages, offered))
        if key in seen:
            report.duplicates += 1
            continue
        seen.add(key)
        report.kinds[kind] += 1
        report.calls_in_output += len(needed)
        if kind == "single":  # one tool serves it: without that tool, nothing on offer does
            session.asked.append((needed[0], messages[0]["content"]))
        report.seconds = time.perf_counter() - start
        yield {"messages": messages, "tools": offered, "kind": kind}
    report.seconds = time.perf_counter() - start


def _dedupe_text(messages: list[dict[str, Any]], offered: list[dict[str, Any]]) -> str:
    """What makes two examples the same: the requests, the calls (or the plain answers) and the tools on
    offer; not the results, whose file names (speech-3.wav) differ on every run of a tool."""
    calls = [c["function"] for m in messages for c in m.get("tool_calls", [])]
    said = [m["content"] for m in messages if m["role"] == "user" or (not calls and m["role"] == "assistant")]
    return json.dumps([said, calls, sorted(t["function"]["name"] for t in offered)], ensure_ascii=False)


def _single(s: _Session, client: Client | None) -> list[dict[str, Any]]:
    from llmworks.data.synth import tool_templates as T

    # The tool with the fewest single calls so far (ties at random): each tool gets its share of a few records.
    name = min(s.tools, key=lambda t: (s.singles[t], s.rng.random()))
    s.singles[name] += 1
    if client is not None:
        try:
            return _model_single(s, client, name)
        except Rejected as e:
            s.report.model_calls_rejected[str(e)] += 1  # the template example below takes its place
    request, args, answer = T.single(s, name)
    call, result_msg, result = s.call(name, args, request)
    return [
        {"role": "user", "content": request},
        call,
        result_msg,
        {"role": "assistant", "content": answer(result)},
    ]


def _model_single(s: _Session, client: Client, name: str) -> list[dict[str, Any]]:
    """Self-Instruct for one call: three template examples in, a new request and its call out."""
    from llmworks.data.synth import tool_templates as T

    spec = s.tools[name]
    shots = []
    for _ in range(3):
        request, args, _answer = T.single(s, name)
        shots.append(f"Request: {request}\nCall: {json.dumps(args, ensure_ascii=False)}")
    # A plain-text few-shot prompt that the model continues after "Request:": small models keep to the
    # format this way, where a chat instruction to write one gets code or prose back.
    prompt = (
        f"Examples of requests to an assistant and the {name} call that serves each "
        f"({name}: {spec.description})\n\n" + "\n\n".join(shots) + "\n\nRequest:"
    )
    reply = client.complete(
        prompt,
        max_tokens=120,
        stop=["\n\n"],  # one request and its call; the model would go on to more examples
        temperature=0.7,
        top_p=0.95,
        seed=s.rng.randrange(2**31),
    ).text
    if not reply.lstrip().startswith("Request:"):
        reply = "Request:" + reply
    m = re.search(r"Request:\s*(.+?)\s*\n\s*Call:\s*(\{.*\})", reply, re.S)
    if not m:
        raise Rejected("unparseable reply")
    request = m.group(1).strip()
    try:
        args = json.loads(m.group(2))
    except json.JSONDecodeError:
        raise Rejected("call is not JSON") from None
    if isinstance(args, dict) and args.get("name") == name and isinstance(args.get("arguments"), dict):
        args = args["arguments"]  # the model wrote the whole call
    problem = call_problem(spec, args, request)
    if problem:
        raise Rejected(problem)
    s.report.model_calls_accepted += 1
    call, result_msg, result = s.call(name, args, request)
    return [
        {"role": "user", "content": request},
        call,
        result_msg,
        {"role": "assistant", "content": T.final_answer(name, result)},
    ]


def _unmatched(s: _Session) -> tuple[list[dict[str, Any]], str]:
    """A request that needs a tool the record does not offer (the tool returned): the answer says so, and
    calls nothing (what BFCL's irrelevance category asks of a model). Its words come once the tools on
    offer are known (`decline`). It is the request of an earlier record that called its tool, where there
    is one: the same words called and declined, with only the tools on offer to tell them apart, so the
    model learns to read the tools rather than the request's kind (recipe v4's model called nearly every
    "Calculate ..." request of BFCL and declined half of the "Find ..." ones, tools or no)."""
    from llmworks.data.synth import tool_templates as T

    if s.asked:
        name, request = s.asked.pop(0)
    else:
        name = s.rng.choice(list(s.tools))
        request, _args, _answer = T.single(s, name)
    return [{"role": "user", "content": request}, {"role": "assistant", "content": ""}], name


def decline(offered: Sequence[dict[str, Any]]) -> str:
    """The answer to a request no offered tool serves: it names the tools on offer as the reason. Recipe v3
    said what the missing tool would do ("none of them can find restaurants near a user's location"), and
    its model said that of requests whose tool *was* on offer, the description there to copy: 105 of
    BFCL's 400 simple requests declined. Words the offered tools' names give cannot be copied from a match."""
    names = [t["function"]["name"] for t in offered]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    verb = "is" if len(names) == 1 else "are"
    return f"I can't do that with the tools I have here: {listed} {verb} for something else."


def _no_tool(s: _Session, client: Client, paraphrase: bool, answer_tokens: int) -> list[dict[str, Any]]:
    """A request no tool serves, answered by the base model itself (greedy), without tools in the prompt so
    the answer is the one it gives anyway; the record offers tools, which teaches not calling them."""
    from llmworks.data.synth import tool_templates as T

    prompt = s.rng.choice(T.NO_TOOL)
    if paraphrase and s.rng.random() < 0.5:
        reply = client.chat(
            [
                {
                    "role": "user",
                    "content": f"Rewrite this message in other words. Reply with the new message only.\n\n{prompt}",
                }
            ],
            max_tokens=40,
            temperature=0.7,
            seed=s.rng.randrange(2**31),
        )
        text = (reply.content or "").strip().strip('"')
        if reply.finish_reason == "stop" and 0 < len(text) <= 160 and "\n" not in text:
            prompt = text
    msgs = [{"role": "user", "content": prompt}]
    if prompt not in s.answers:
        reply = client.chat(msgs, max_tokens=answer_tokens, temperature=0.0)
        text = (reply.content or "").strip()
        # A cut-off answer would teach the model not to stop.
        s.answers[prompt] = (
            text if reply.finish_reason == "stop" and text and "<tool_call>" not in text else None
        )
    answer = s.answers[prompt]
    if answer is None:
        raise Rejected("plain answer cut off or empty")
    return [*msgs, {"role": "assistant", "content": answer}]
