"""A MindSearch-style planner: the question becomes a graph of sub-questions, searchers answer them (the
independent ones in parallel), and one last request writes the answer, citing the nodes' sources.

The planner writes the graph as JSON constrained by `graph_schema` (schema-checked, never code that runs):
nodes numbered from 1, each with a sub-question and the earlier nodes it depends on, so every graph is a
DAG. A node's searcher looks the sub-question up in the knowledge bases (and a search backend, if one is
configured: off by default), then asks the model for a short answer from those hits and from the answers
of the nodes it depends on. Nodes whose dependencies are done run together on threads: through the one
client they share the engine's batch (`make_client(parallel=4)`, or `llmworks serve --parallel 4`).

Every step streams: the graph when it is planned, each node when it starts and ends, then the answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from llmworks.agent.knowledge import Hit, KnowledgeBase, cite
from llmworks.agent.run import Step, answer_schema, parse_answer
from llmworks.agent.tools.kb import format_hits, search_all
from llmworks.client.base import Client
from llmworks.errors import UserError

__all__ = [
    "GraphError",
    "Node",
    "PlanResult",
    "Planner",
    "cited_sources",
    "graph_grammar_schema",
    "graph_schema",
    "validate_graph",
]


@dataclass
class Node:
    id: int
    question: str
    depends_on: list[int] = field(default_factory=list)
    status: str = "waiting"
    """waiting, running, done."""
    answer: str = ""
    sources: list[Hit] = field(default_factory=list)
    seconds: float = 0.0
    started: float = 0.0
    """When its search began, in seconds after the graph was planned (how overlapping nodes show)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "depends_on": self.depends_on,
            "status": self.status,
            "answer": self.answer,
            "sources": [
                {"cite": cite(h), "source": h.source, "heading": h.heading, "page": h.page}
                for h in self.sources
            ],
            "started": round(self.started, 3),
            "seconds": round(self.seconds, 3),
        }


@dataclass
class PlanResult:
    question: str
    answer: str
    nodes: list[Node]
    sources: list[Hit]
    steps: list[Step]
    seconds: float = 0.0
    plan_seconds: float = 0.0
    nodes_seconds: float = 0.0
    plan_reply: str = ""
    """The planner's reply as the model wrote it ("" for a given graph)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "nodes": [n.to_dict() for n in self.nodes],
            "sources": [cite(h) for h in self.sources],
            "seconds": round(self.seconds, 3),
            "plan_seconds": round(self.plan_seconds, 3),
            "nodes_seconds": round(self.nodes_seconds, 3),
            "plan_reply": self.plan_reply,
        }


def graph_schema(max_nodes: int = 4) -> dict[str, Any]:
    """The planner's reply: nodes numbered from 1 in order, each depending only on earlier ones (so a DAG).
    The grammar holds the shape; `validate_graph` checks the numbering, which a grammar cannot."""
    return {
        "type": "object",
        "properties": {
            "nodes": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_nodes,
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "question": {"type": "string", "minLength": 8, "maxLength": 120},
                        "depends_on": {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
                    },
                    "required": ["id", "question", "depends_on"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["nodes"],
        "additionalProperties": False,
    }


def graph_grammar_schema(max_nodes: int = 4) -> dict[str, Any]:
    """What the model is constrained to: the graphs of `graph_schema`, spelled out by position (node i has
    id i and may depend only on 1..i-1), so the grammar cannot write a forward dependency or a cycle (the
    embedded model wrote node 1 depending on [1, 2] under the looser schema)."""

    def node(i: int) -> dict[str, Any]:
        deps: dict[str, Any] = (
            {"type": "array", "items": {"enum": list(range(1, i))}, "maxItems": min(3, i - 1)}
            if i > 1
            else {"const": []}
        )
        return {
            "type": "object",
            "properties": {
                "id": {"const": i},
                "question": {"type": "string", "minLength": 8, "maxLength": 120},
                "depends_on": deps,
            },
            "required": ["id", "question", "depends_on"],
            "additionalProperties": False,
        }

    tuples = [
        {"type": "array", "prefixItems": [node(i) for i in range(1, n + 1)], "items": False}
        for n in range(1, max_nodes + 1)
    ]
    return {
        "type": "object",
        "properties": {"nodes": {"anyOf": tuples}},
        "required": ["nodes"],
        "additionalProperties": False,
    }


class GraphError(ValueError):
    """A planned graph that is not valid: why, in words."""


def validate_graph(obj: Any, max_nodes: int = 4) -> list[Node]:
    """The nodes of a planned graph, or GraphError: the schema, ids 1..n in order, dependencies only on
    earlier nodes (no cycles, no forward or self references). A repeated sub-question is merged into its
    first occurrence (the embedded model repeats itself), and the nodes are numbered again."""
    import jsonschema

    try:
        jsonschema.validate(obj, graph_schema(max_nodes))
    except jsonschema.ValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "graph"
        raise GraphError(f"{where}: {e.message}") from None
    kept: list[tuple[int, str, list[int]]] = []
    seen: dict[str, int] = {}
    same: dict[int, int] = {}
    for i, raw in enumerate(obj["nodes"], 1):
        if raw["id"] != i:
            raise GraphError(f"node {i} has id {raw['id']} (ids are 1, 2, ... in order)")
        bad = [d for d in raw["depends_on"] if not 1 <= d < i]
        if bad:
            raise GraphError(f"node {i} depends on {bad} (only on earlier nodes)")
        q = " ".join(raw["question"].split())
        key = q.lower().rstrip("?. ")
        if key in seen:
            same[i] = seen[key]
            continue
        seen[key] = same[i] = i
        kept.append((i, q, raw["depends_on"]))
    number = {old: new for new, (old, _, _) in enumerate(kept, 1)}
    return [Node(number[i], q, sorted({number[same[d]] for d in deps} - {number[i]})) for i, q, deps in kept]


PLAN_PROMPT = (
    "Split the question into at most {n} short sub-questions, each one that can be looked up in the "
    "documents. Number them from 1. A sub-question that needs the answers of others lists their numbers in "
    "depends_on (only earlier numbers); the others have depends_on []. Write JSON.\n\n"
    "From the documents: {notes}\n\nQuestion: {q}"
)
# One worked example as an earlier turn: the 135M model copied the JSON shape but wrote dates as questions
# without one (2018-01-01T00:00...). Its questions must not be copied (validate_graph rejects repeats, and
# `plan` rejects the example's own questions).
PLAN_EXAMPLE = (
    "Compare the two plans and say which is cheaper",
    "The shop sells two plans, Basic and Pro.",
    {
        "nodes": [
            {"id": 1, "question": "What does the Basic plan cost?", "depends_on": []},
            {"id": 2, "question": "What does the Pro plan cost?", "depends_on": []},
            {"id": 3, "question": "Which plan is cheaper, Basic or Pro?", "depends_on": [1, 2]},
        ]
    },
)
NODE_PROMPT = (
    "Answer the question in one sentence from the documents below. If they do not say, answer 'unknown'.\n\n"
    "{context}Documents:\n{docs}\n\nQuestion: {q}"
)
ANSWER_PROMPT = (
    "Answer the question from the findings below, in two or three sentences.\n\nFindings:\n{findings}\n\n"
    "Question: {q}"
)


class Planner:
    def __init__(
        self,
        client: Client,
        kbs: Sequence[KnowledgeBase],
        *,
        max_nodes: int = 4,
        k: int = 3,
        node_tokens: int = 96,
        answer_tokens: int = 192,
        constrain: bool = True,
        search: KnowledgeBase | None = None,
        temperature: float = 0.0,
        seed: int | None = 0,
    ) -> None:
        """`kbs`: what the searchers look in; `search`: a search backend searched as one more (None: off)."""
        if not kbs and search is None:
            raise UserError(
                "the planner needs a knowledge base to search.", "Give one: --kb DIR (or a KB name)."
            )
        self.client = client
        self.sources = [*kbs, *([search] if search is not None else [])]
        self.max_nodes = max_nodes
        self.k = k
        self.node_tokens = node_tokens
        self.answer_tokens = answer_tokens
        self.constrain = constrain
        self.temperature = temperature
        self.seed = seed

    def run(self, question: str, parallel: bool = True, nodes: list[Node] | None = None) -> PlanResult:
        stream = self.run_stream(question, parallel=parallel, nodes=nodes)
        for _ in stream:
            pass
        assert stream.result is not None
        return stream.result

    def run_stream(self, question: str, parallel: bool = True, nodes: list[Node] | None = None) -> PlannerRun:
        """The steps as they happen; `.result` after the last. `nodes`: a graph to run instead of planning."""
        if not question.strip():
            raise UserError("the question is empty.", "Ask something.")
        return PlannerRun(self, question.strip(), parallel, nodes)

    # -- the three stages --

    def plan(self, question: str) -> tuple[list[Node], str | None, str]:
        """The graph for `question`, why the model's plan was not used (None: it was), and the model's
        reply. A plan that is not a valid graph becomes one node, the question itself, so a run finishes."""
        options: dict[str, Any] = {"max_tokens": 48 * self.max_nodes + 32}
        if self.constrain:
            options["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "graph", "schema": graph_grammar_schema(self.max_nodes)},
            }
        # The planner reads the best passages' first lines, so its sub-questions can name what the question
        # only points at ("the two encoders" -> Brisk and Dense).
        notes = " ".join(" ".join(h.text.split())[:200] for h in search_all(self.sources, question, 2))
        ex_q, ex_notes, ex_graph = PLAN_EXAMPLE
        n = self.max_nodes
        messages = [
            {"role": "user", "content": PLAN_PROMPT.format(n=n, notes=ex_notes, q=ex_q)},
            {"role": "assistant", "content": json.dumps(ex_graph)},
            {
                "role": "user",
                "content": PLAN_PROMPT.format(n=n, notes=notes or "(nothing found)", q=question),
            },
        ]
        r = self.client.chat(messages, temperature=self.temperature, seed=self.seed, **options)
        reply = r.content or ""
        try:
            nodes = validate_graph(json.loads(reply), self.max_nodes)
        except json.JSONDecodeError as e:
            return [Node(1, question)], f"the plan is not JSON ({e.msg})", reply
        except GraphError as e:
            return [Node(1, question)], str(e), reply
        copied = {x["question"].lower() for x in ex_graph["nodes"]} & {x.question.lower() for x in nodes}
        if copied:
            return [Node(1, question)], "the plan copies the example's sub-questions", reply
        return nodes, None, reply

    def answer_node(self, node: Node, done: dict[int, Node]) -> None:
        started = time.monotonic()
        node.sources = search_all(self.sources, node.question, self.k)
        context = "".join(
            f"Known: {done[d].question} {done[d].answer}\n" for d in node.depends_on if d in done
        )
        prompt = NODE_PROMPT.format(
            context=context + "\n" if context else "",
            docs=format_hits(node.sources, 500) or "(none found)",
            q=node.question,
        )
        node.answer = self._answer(prompt, self.node_tokens)
        node.seconds = time.monotonic() - started

    def answer(self, question: str, nodes: list[Node]) -> str:
        findings = "\n".join(f"- {n.question} {n.answer}" for n in nodes if n.answer)
        return self._answer(ANSWER_PROMPT.format(findings=findings, q=question), self.answer_tokens)

    def _answer(self, prompt: str, max_tokens: int) -> str:
        options: dict[str, Any] = {"max_tokens": max_tokens}
        if self.constrain:
            options["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": answer_schema(max_tokens)},
            }
        r = self._chat(prompt, **options)
        return (parse_answer(r.content or "") if self.constrain else (r.content or "")).strip()

    def _chat(self, prompt: str, **options: Any) -> Any:
        return self.client.chat(
            [{"role": "user", "content": prompt}], temperature=self.temperature, seed=self.seed, **options
        )


class PlannerRun:
    def __init__(self, planner: Planner, question: str, parallel: bool, nodes: list[Node] | None) -> None:
        self.planner = planner
        self.question = question
        self.result: PlanResult | None = None
        self.plan_reply = ""
        """The model's plan, as it wrote it (for the record: result.json)."""
        self._steps = self._generate(parallel, nodes)

    def __iter__(self) -> Iterator[Step]:
        return self._steps

    def _generate(self, parallel: bool, given: list[Node] | None) -> Iterator[Step]:
        p, started, steps = self.planner, time.monotonic(), []

        def emit(step: Step) -> Step:
            steps.append(step)
            return step

        nodes, rejected, self.plan_reply = (given, None, "") if given is not None else p.plan(self.question)
        plan_seconds = time.monotonic() - started
        if rejected:
            yield emit(Step("notice", f"the plan was not a usable graph ({rejected}): one node instead"))
        yield emit(Step("graph", data=graph_data(nodes)))
        t_nodes = time.monotonic()
        done: dict[int, Node] = {}
        pending = {n.id: n for n in nodes}
        with ThreadPoolExecutor(max_workers=len(nodes) if parallel else 1) as pool:
            running: dict[Future[None], Node] = {}
            while pending or running:
                ready = [n for n in pending.values() if all(d in done for d in n.depends_on)]
                if not parallel:  # one after another: the baseline the parallel run is measured against
                    ready = ready[:1] if not running else []
                for n in ready:
                    del pending[n.id]
                    n.status, n.started = "running", time.monotonic() - t_nodes
                    yield emit(Step("node", n.question, data=n.to_dict()))
                    running[pool.submit(p.answer_node, n, dict(done))] = n
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in sorted(finished, key=lambda f: running[f].id):
                    n = running.pop(f)
                    f.result()  # a failed request fails the run
                    n.status = "done"
                    done[n.id] = n
                    yield emit(Step("node", n.answer, data=n.to_dict()))
        nodes_seconds = time.monotonic() - t_nodes
        answer = p.answer(self.question, nodes)
        sources = cited_sources(nodes)
        if sources:
            answer += "\n\nSources: " + "; ".join(f"[{i}] {cite(h)}" for i, h in enumerate(sources, 1))
        yield emit(Step("answer", answer, data={"sources": [cite(h) for h in sources]}))
        self.result = PlanResult(
            self.question,
            answer,
            nodes,
            sources,
            steps,
            time.monotonic() - started,
            plan_seconds,
            nodes_seconds,
            self.plan_reply,
        )


def graph_data(nodes: Sequence[Node]) -> dict[str, Any]:
    return {
        "nodes": [n.to_dict() for n in nodes],
        "edges": [[d, n.id] for n in nodes for d in n.depends_on],
    }


def cited_sources(nodes: Sequence[Node]) -> list[Hit]:
    """The sources of the nodes that found an answer (not 'unknown'), each once, in node order."""
    seen, out = set(), []
    for n in nodes:
        if not n.answer or n.answer.lower().strip(" .") == "unknown":
            continue
        for h in n.sources:
            key = (h.source, h.heading, h.page)
            if key not in seen:
                seen.add(key)
                out.append(h)
    return out
