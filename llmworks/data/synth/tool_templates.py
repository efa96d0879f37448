"""The templates of `data synth tool-calls`: requests and calls for the built-in tools (python for a
computation, calculator when asked for by name, chart for "plot ...", speak for "read this aloud"), generic
ones for any tool from its schema, two-call sequences, follow-ups, and requests that need no tool.

A template makes (request, arguments, answer-from-result); `tool_calls` validates and runs the call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmworks.data.synth.tool_calls import NoTemplate, Rejected

if TYPE_CHECKING:
    import random

    from llmworks.data.synth.tool_calls import _Session

Single = tuple[str, dict[str, Any], Callable[[str], str]]
Messages = list[dict[str, Any]]

SENTENCES = [
    "Good morning, everyone.",
    "The train to Lyon leaves at nine.",
    "Welcome to the team!",
    "Please close the door when you leave.",
    "The meeting has moved to Thursday.",
    "Happy birthday, Sam.",
    "Dinner is ready.",
    "Remember to water the plants.",
    "The library opens at ten in the morning.",
    "Thank you for your patience.",
    "It is going to rain this afternoon.",
    "The quick brown fox jumps over the lazy dog.",
    "Turn left at the next corner.",
    "Your order has been shipped.",
    "Breakfast is served until eleven.",
    "Keep calm and carry on.",
    "The museum is closed on Mondays.",
    "Drink a glass of water.",
    "Take a short break and stretch.",
    "The package arrived this morning.",
    "Once upon a time there was a small red boat.",
    "Let us begin the lesson.",
    "The shop sells fresh bread every day.",
    "See you tomorrow.",
]
WORDS = [
    "banana",
    "keyboard",
    "river",
    "elephant",
    "python",
    "window",
    "garden",
    "mountain",
    "pencil",
    "orange",
]
NO_TOOL = [
    "hello",
    "Hello!",
    "Hi there.",
    "Hey, how are you?",
    "Good morning!",
    "Good evening.",
    "How are you today?",
    "Thanks!",
    "Thank you very much.",
    "Nice to meet you.",
    "Goodbye!",
    "What is the capital of France?",
    "What is the capital of Japan?",
    "Who wrote Hamlet?",
    "What do bees make?",
    "Name a colour.",
    "Give me a synonym for happy.",
    "What is the opposite of cold?",
    "Tell me a fun fact about cats.",
    "Write one sentence about the sea.",
    "What is a noun?",
    "Describe a dog in one sentence.",
    "What language is spoken in Brazil?",
    "Say hello in Spanish.",
    "What is the largest ocean on Earth?",
    "Give me a tip for sleeping well.",
    "What colour is the sky?",
    "Which animal is known as the king of the jungle?",
    "What is the freezing point of water in Celsius?",
    "Suggest a name for a cat.",
    "What do you call a baby dog?",
    "What is the main ingredient of guacamole?",
    "Recommend a good habit.",
    "What is a haiku?",
    "Tell me something nice.",
    "What season comes after winter?",
    "Good night!",
    "See you later.",
    "What is your favourite colour?",
    "What is the capital of Italy?",
    "What is the capital of Canada?",
    "Who painted the Mona Lisa?",
    "What is the tallest animal?",
    "What do cows drink?",
    "Give me a word that rhymes with cat.",
    "What is the plural of mouse?",
    "What is the opposite of big?",
    "Name a fruit that is yellow.",
    "What is a verb?",
    "Which planet is closest to the sun?",
    "What do plants need to grow?",
    "Say thank you in French.",
    "What is the colour of grass?",
    "Tell me a short joke.",
    "What is a group of lions called?",
    "Suggest a name for a dog.",
]
VOICES = ["en", "en-us", "en-gb"]
CITIES = ["Paris", "Tokyo", "Lagos", "Lima", "Oslo", "Cairo", "Denver", "Madrid", "Hanoi", "Sydney"]
NAMES = ["Alice", "Bob", "Chen", "Dana", "Emeka", "Fatima", "Goran", "Hana"]


def single(s: _Session, name: str) -> Single:
    """A request that needs one call of `name`."""
    if s.tools[name].builtin and name in BUILTIN:
        return BUILTIN[name](s.rng)
    return _generic(s, name)


def final_answer(name: str, result: str) -> str:
    """The assistant's last turn from a tool's result, when no template wrote one."""
    file = re.search(r"(\S+\.(?:png|wav))", result)
    if name == "speak" and file:
        return f"I read it aloud: {file.group(1)}."
    if name == "chart" and file:
        return f"Here is the chart: {file.group(1)}."
    if name in ("python", "calculator"):
        return f"The result is {result.strip()}."
    return f"Done. {name} returned: {result}"


# -- built-in tools ----------------------------------------------------------------------------------


def _python(rng: random.Random) -> Single:
    a, b = rng.randint(12, 999), rng.randint(2, 99)
    k, d, pct = rng.randint(3, 12), rng.randint(2, 30), rng.choice([5, 10, 15, 20, 25, 30, 40, 75])
    xs = ", ".join(str(rng.randint(1, 99)) for _ in range(rng.randint(4, 7)))
    w, p, sq = rng.choice(WORDS), rng.randint(20, 500), rng.randint(2, 40) ** 2
    options: list[tuple[str, str, str]] = [
        (f"What is {a} times {b}?", f"print({a} * {b})", f"{a} times {b} is {{r}}."),
        (f"Compute {a} * {b}.", f"print({a} * {b})", f"{a} * {b} = {{r}}."),
        (f"What is {a} plus {b}?", f"print({a} + {b})", f"{a} plus {b} is {{r}}."),
        (f"Calculate {a} minus {b}.", f"print({a} - {b})", f"{a} minus {b} is {{r}}."),
        (f"What is {a} divided by {b}?", f"print({a} / {b})", f"{a} divided by {b} is {{r}}."),
        (f"What is the sum of the numbers from 1 to {a}?", f"print(sum(range(1, {a} + 1)))", "The sum is {r}."),
        (f"What is {k} factorial?", f"import math\nprint(math.factorial({k}))", f"{k}! = {{r}}."),
        (f"What is {b} to the power of {k}?", f"print({b} ** {k})", f"{b} to the power of {k} is {{r}}."),
        (f"How many seconds are there in {d} days?", f"print({d} * 24 * 60 * 60)", f"There are {{r}} seconds in {d} days."),
        (f"What is the average of {xs}?", f"xs = [{xs}]\nprint(sum(xs) / len(xs))", "The average is {r}."),
        (f"Sort these numbers from smallest to largest: {xs}.", f"print(sorted([{xs}]))", "Sorted: {r}."),
        (f"What is the largest of {xs}?", f"print(max([{xs}]))", "The largest is {r}."),
        (f"What is the square root of {sq}?", f"import math\nprint(math.sqrt({sq}))", f"The square root of {sq} is {{r}}."),
        (f"What is {pct}% of {a}?", f"print({a} * {pct} / 100)", f"{pct}% of {a} is {{r}}."),
        (f"Count the vowels in the word '{w}'.", f"print(sum(c in 'aeiou' for c in '{w}'))", f"'{w}' has {{r}} vowels."),
        (f"Reverse the string '{w}'.", f"print('{w}'[::-1])", f"'{w}' reversed is '{{r}}'."),
        (f"How many letters are in the word '{w}'?", f"print(len('{w}'))", f"'{w}' has {{r}} letters."),
    ]  # fmt: skip
    if rng.random() < 1 / len(options):
        code = f"n = {p}\nprint(n > 1 and all(n % i for i in range(2, int(n ** 0.5) + 1)))"
        return (
            f"Is {p} a prime number?",
            {"code": code},
            lambda r: (
                f"{'Yes' if r.strip() == 'True' else 'No'}, {p} is {'' if r.strip() == 'True' else 'not '}a prime number."
            ),
        )
    request, code, answer = rng.choice(options)
    return request, {"code": code}, lambda r: answer.format(r=r.strip())


def _calculator(rng: random.Random) -> Single:
    a, b, pct = rng.randint(10, 9999), rng.randint(2, 99), rng.choice([3, 7, 12, 17, 35])
    options = [
        (f"Use the calculator to work out {a} * {b}.", f"{a} * {b}"),
        (f"With the calculator: what is {pct}% of {a}?", f"{pct}% of {a}"),
        (f"Calculator, please: ({a} + {b}) / 4", f"({a} + {b}) / 4"),
        (f"Use the calculator for {a} - {b} * 3.", f"{a} - {b} * 3"),
    ]
    request, expr = rng.choice(options)
    return request, {"expression": expr}, lambda r: f"{expr} = {r.strip()}."


def _chart(rng: random.Random) -> Single:
    ys = [rng.randint(1, 60) for _ in range(rng.randint(3, 7))]
    shown = ", ".join(map(str, ys))
    lo, hi = rng.randint(-5, 2), rng.randint(5, 12)
    expr, said = rng.choice(
        [("x**2", "x squared"), ("2*x + 1", "2x + 1"), ("x**3", "x cubed"), ("sin(x)", "sin(x)")]
    )
    kind = rng.choice(["bar", "line"])
    options: list[tuple[str, dict[str, Any]]] = [
        (f"Plot {said} from {lo} to {hi}.", {"kind": "line", "expression": expr, "x_min": lo, "x_max": hi}),
        (f"Draw a graph of y = {expr} for x between {lo} and {hi}.", {"kind": "line", "expression": expr, "x_min": lo, "x_max": hi}),
        (f"Make a {kind} chart of these values: {shown}.", {"kind": kind, "y": ys}),
        (f"Plot these numbers: {shown}.", {"kind": "line", "y": ys}),
        (f"Can you chart my weekly sales? {shown}", {"kind": "bar", "title": "Weekly sales", "y": ys}),
        (f"Show {shown} as a scatter plot.", {"kind": "scatter", "y": ys}),
    ]  # fmt: skip
    request, args = rng.choice(options)
    return request, args, lambda r: final_answer("chart", r)


def _speak(rng: random.Random) -> Single:
    text = rng.choice(SENTENCES)
    options = [
        f"Read this aloud: {text}",
        f"Please read the following text aloud: {text}",
        f'Say "{text}" out loud.',
        f"Can you speak this for me? {text}",
        f"Read aloud: {text}",
        f"Say this out loud: {text}",
        f'I want to hear it: "{text}"',
    ]
    return rng.choice(options), {"text": text}, lambda r: final_answer("speak", r)


BUILTIN: dict[str, Callable[[random.Random], Single]] = {
    "python": _python,
    "calculator": _calculator,
    "chart": _chart,
    "speak": _speak,
}


# -- any tool, from its schema -----------------------------------------------------------------------


def _generic(s: _Session, name: str) -> Single:
    spec = s.tools[name]
    if spec.requests:
        return _from_requests(s, name)
    args = example_arguments(spec.parameters, s.rng)
    phrase = ", ".join(f"{k.replace('_', ' ')} {_said(v)}" for k, v in args.items()) or "the defaults"
    desc = spec.description.rstrip(". ")
    options = [
        f"{desc}: {phrase}.",
        f"Can you use {name} with {phrase}?",
        f"Please {desc[0].lower() + desc[1:]} ({phrase}).",
        f"I need {name.replace('_', ' ')} for {phrase}.",
    ]
    return s.rng.choice(options), args, lambda r: final_answer(name, r)


def _from_requests(s: _Session, name: str) -> Single:
    """A request from the tool's own templates: each slot filled from its values, which become the call's
    arguments (a parameter the request does not state is left out)."""
    from llmworks.data.synth import spoken
    from llmworks.data.synth.tool_calls import SLOT

    spec = s.tools[name]
    props = spec.parameters.get("properties", {})
    template = s.rng.choice(spec.requests)
    args = {slot: s.rng.choice(spec.values[slot]) for slot in dict.fromkeys(SLOT.findall(template))}
    # A date or a currency code is said in words half the time, once per slot: the call keeps the format.
    said = {k: spoken.say(props.get(k), k, v, s.rng) or _said(v) for k, v in args.items()}
    request = SLOT.sub(lambda m: said[m.group(1)], template)
    return request, args, lambda r: final_answer(name, r)


def _said(value: Any) -> str:
    if isinstance(value, list) and all(not isinstance(v, (list, dict)) for v in value):
        return ", ".join(_said(v) for v in value)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def example_arguments(schema: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Arguments for an object schema: every required property and each optional one half the time."""
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    return {k: example_value(p, k, rng) for k, p in props.items() if k in required or rng.random() < 0.5}


def example_value(schema: Any, key: str, rng: random.Random) -> Any:
    """A value for one property, from its enum/examples/default or its type (and its name, for strings)."""
    if not isinstance(schema, dict):
        return "example"
    for pick in ("enum", "examples"):
        if isinstance(schema.get(pick), list) and schema[pick]:
            return rng.choice(schema[pick])
    if "const" in schema:
        return schema["const"]
    if "default" in schema and rng.random() < 0.3:
        return schema["default"]
    if isinstance(schema.get("anyOf") or schema.get("oneOf"), list):
        return example_value(rng.choice(schema.get("anyOf") or schema["oneOf"]), key, rng)
    kind = schema.get("type", "string")
    kind = rng.choice(kind) if isinstance(kind, list) else kind
    if kind in ("integer", "number"):
        lo = schema.get("minimum", 1)
        hi = schema.get("maximum", max(lo + 1, 100))
        v = rng.randint(int(lo), int(hi))
        return v if kind == "integer" else float(v)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "array":
        n = max(int(schema.get("minItems", 1)), rng.randint(1, 3))
        return [example_value(schema.get("items", {}), key, rng) for _ in range(n)]
    if kind == "object":
        return example_arguments(schema, rng)
    return _string_for(key, schema, rng)


def _string_for(key: str, schema: dict[str, Any], rng: random.Random) -> str:
    k = key.lower()
    fmt = schema.get("format")
    if fmt == "date":
        return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if fmt == "email":
        return f"{rng.choice(NAMES).lower()}@example.com"
    if any(w in k for w in ("city", "location", "place", "town")):
        return rng.choice(CITIES)
    if "name" in k or k in ("user", "person", "to", "recipient"):
        return rng.choice(NAMES)
    if any(w in k for w in ("text", "message", "content", "body", "note")):
        return rng.choice(SENTENCES).rstrip(".!")
    return rng.choice(WORDS)


# -- two calls in sequence, follow-ups ---------------------------------------------------------------


def sequence(s: _Session) -> Messages:
    """A request that needs two calls, the second using the first's result."""
    has = set(s.tools)
    options = []
    if {"python", "speak"} <= has:
        options.append(_compute_then_speak)
    if {"python", "chart"} <= has:
        options.append(_compute_then_chart)
    if {"chart", "speak"} <= has:
        options.append(_chart_then_speak)
    if any(not t.builtin for t in s.tools.values()):
        options.append(_two_generic)
    if not options:
        raise NoTemplate("no two-call template for these tools")
    return s.rng.choice(options)(s)


def _compute_then_speak(s: _Session) -> Messages:
    request, args, answer = _python(s.rng)
    ask = (
        f"{request.rstrip('?.')}? Then read the answer aloud."
        if "?" in request
        else f"{request} Then say the result out loud."
    )
    call1, res1, r1 = s.call("python", args, ask)
    said = answer(r1)
    call2, res2, r2 = s.call("speak", {"text": said}, said)
    return [
        {"role": "user", "content": ask},
        call1,
        res1,
        call2,
        res2,
        {"role": "assistant", "content": f"{said} I also read it aloud: {_file(r2)}."},
    ]


def _compute_then_chart(s: _Session) -> Messages:
    n = s.rng.randint(4, 8)
    f, said = s.rng.choice(
        [
            ("i ** 2", "squares"),
            ("i ** 3", "cubes"),
            ("2 ** i", "powers of two"),
            ("i * 10", "multiples of ten"),
        ]
    )
    ask = f"Compute the {said} of 1 to {n} and plot them as a bar chart."
    call1, res1, r1 = s.call("python", {"code": f"print([{f} for i in range(1, {n} + 1)])"}, ask)
    try:
        ys = json.loads(r1)
    except json.JSONDecodeError:
        raise Rejected("python printed no list") from None
    call2, res2, r2 = s.call("chart", {"kind": "bar", "title": f"The {said} of 1 to {n}", "y": ys}, ask + r1)
    return [
        {"role": "user", "content": ask},
        call1,
        res1,
        call2,
        res2,
        {
            "role": "assistant",
            "content": f"The {said} of 1 to {n} are {r1.strip()}. Here is the chart: {_file(r2)}.",
        },
    ]


def _chart_then_speak(s: _Session) -> Messages:
    request, args, _ = _chart(s.rng)
    ask = f"{request.rstrip('.?')}, then tell me out loud what you drew."
    call1, res1, r1 = s.call("chart", args, ask)
    said = r1.split(" Saved ")[0]
    call2, res2, r2 = s.call("speak", {"text": said}, said)
    return [
        {"role": "user", "content": ask},
        call1,
        res1,
        call2,
        res2,
        {
            "role": "assistant",
            "content": f"Here is the chart: {_file(r1)}. {said} I read that aloud: {_file(r2)}.",
        },
    ]


def _two_generic(s: _Session) -> Messages:
    generic = [n for n, t in s.tools.items() if not t.builtin]
    first = s.rng.choice(generic)
    second = s.rng.choice([n for n in s.tools if n != first] or [first])
    r_a, a_args, _ = single(s, first)
    r_b, b_args, _ = single(s, second)
    ask = f"{r_a.rstrip('.?')}, and then {r_b[0].lower() + r_b[1:]}"
    call1, res1, r1 = s.call(first, a_args, r_a)  # each call is checked against its own part of the request
    call2, res2, r2 = s.call(second, b_args, r_b)
    done = f"{final_answer(first, r1)} {final_answer(second, r2)}"
    return [
        {"role": "user", "content": ask},
        call1,
        res1,
        call2,
        res2,
        {"role": "assistant", "content": done},
    ]


def follow_up(s: _Session) -> Messages:
    """One call, its answer, then a second user turn that builds on it (another call, or thanks)."""
    name = s.rng.choice(list(s.tools))
    request, args, answer = single(s, name)
    call1, res1, r1 = s.call(name, args, request)
    said = answer(r1)
    convo: Messages = [
        {"role": "user", "content": request},
        call1,
        res1,
        {"role": "assistant", "content": said},
    ]
    context = request + "\n" + said
    nxt: list[tuple[str, str, dict[str, Any]]] = []
    if name == "python" and "speak" in s.tools:
        nxt.append(("Now read that answer aloud.", "speak", {"text": said}))
    if name == "chart" and "chart" in s.tools and args["kind"] != "bar":
        nxt.append(("Make it a bar chart instead.", "chart", {**args, "kind": "bar"}))
    if name == "speak":
        nxt.append(("Say it again in British English (voice en-gb).", "speak", {**args, "voice": "en-gb"}))
    if not s.tools[name].builtin:
        changed = _changed(s, name, args)
        if changed is not None:
            key, value = changed
            nxt.append(
                (f"Now do the same with {key.replace('_', ' ')} {_said(value)}.", name, {**args, key: value})
            )
    if not nxt or s.rng.random() < 0.2:
        thanks = s.rng.choice(["Thanks!", "Thank you, that's all.", "Great, thanks."])
        return [
            *convo,
            {"role": "user", "content": thanks},
            {"role": "assistant", "content": "You're welcome!"},
        ]
    ask, tool, args2 = s.rng.choice(nxt)
    # the new turn's numbers must all be used; values may come from the whole conversation
    call2, res2, r2 = s.call(tool, args2, context + "\n" + ask, numbers_in=ask)
    return [
        *convo,
        {"role": "user", "content": ask},
        call2,
        res2,
        {"role": "assistant", "content": final_answer(tool, r2)},
    ]


def _changed(s: _Session, name: str, args: dict[str, Any]) -> tuple[str, Any] | None:
    props = s.tools[name].parameters.get("properties", {})
    for key in s.rng.sample(list(args), len(args)):
        for _ in range(5):
            value = example_value(props.get(key, {}), key, s.rng)
            if value != args[key]:
                return key, value
    return None


def _file(result: str) -> str:
    m = re.search(r"(\S+\.(?:png|wav))", result)
    return m.group(1) if m else "the file"
