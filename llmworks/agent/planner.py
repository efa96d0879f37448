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

__all__ = ["Node", "PlanResult", "Planner", "graph_schema"]


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "nodes": [n.to_dict() for n in self.nodes],
            "sources": [cite(h) for h in self.sources],
            "seconds": round(self.seconds, 3),
        }


def graph_schema(max_nodes: int = 4) -> dict[str, Any]:
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
                        "question": {"type": "string", "maxLength": 160},
                        "depends_on": {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
                    },
                    "required": ["question", "depends_on"],
                },
            }
        },
        "required": ["nodes"],
    }


PLAN_PROMPT = (
    "Split the question into at most {n} short sub-questions that can each be looked up in the documents. "
    "Number them from 1; a sub-question that needs the answer of another lists that number in depends_on "
    "(only earlier numbers). Independent sub-questions have depends_on []. Write JSON: "
    '{{"nodes": [{{"question": "...", "depends_on": []}}, ...]}}\n\nQuestion: {q}'
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

    def run(self, question: str, parallel: bool = True) -> PlanResult:
        stream = self.run_stream(question, parallel=parallel)
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

    def plan(self, question: str) -> list[Node]:
        options: dict[str, Any] = {"max_tokens": 64 * self.max_nodes + 32}
        if self.constrain:
            options["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "graph", "schema": graph_schema(self.max_nodes)},
            }
        prompt = PLAN_PROMPT.format(n=self.max_nodes, q=question)
        r = self._chat(prompt, **options)
        return parse_graph(r.content or "", question, self.max_nodes)

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
        findings = "\n".join(f"- {n.question} {n.answer}" for n in nodes)
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
        self._steps = self._generate(parallel, nodes)

    def __iter__(self) -> Iterator[Step]:
        return self._steps

    def _generate(self, parallel: bool, given: list[Node] | None) -> Iterator[Step]:
        p, started, steps = self.planner, time.monotonic(), []

        def emit(step: Step) -> Step:
            steps.append(step)
            return step

        nodes = given if given is not None else p.plan(self.question)
        plan_seconds = time.monotonic() - started
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
                    n.status = "running"
                    yield emit(Step("node", n.question, data=n.to_dict()))
                    running[pool.submit(p.answer_node, n, dict(done))] = n
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in finished:
                    n = running.pop(f)
                    f.result()  # a failed request fails the run
                    n.status = "done"
                    done[n.id] = n
                    yield emit(Step("node", n.answer, data=n.to_dict()))
        nodes_seconds = time.monotonic() - t_nodes
        answer = p.answer(self.question, nodes)
        sources = _unique_sources(nodes)
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
        )


def parse_graph(text: str, question: str, max_nodes: int = 4) -> list[Node]:
    """The planner's JSON as nodes, checked: a reply that is not the schema becomes one node (the question
    itself); a dependency on a node that is not earlier is dropped, so the graph is always a DAG."""
    import jsonschema

    try:
        obj = json.loads(text)
        jsonschema.validate(obj, graph_schema(max_nodes))
    except (json.JSONDecodeError, jsonschema.ValidationError):
        return [Node(1, question)]
    nodes = []
    for i, raw in enumerate(obj["nodes"], 1):
        q = " ".join(str(raw["question"]).split()) or question
        deps = sorted({d for d in raw["depends_on"] if isinstance(d, int) and 1 <= d < i})
        nodes.append(Node(i, q, deps))
    return nodes


def graph_data(nodes: Sequence[Node]) -> dict[str, Any]:
    return {
        "nodes": [n.to_dict() for n in nodes],
        "edges": [[d, n.id] for n in nodes for d in n.depends_on],
    }


def _unique_sources(nodes: Sequence[Node]) -> list[Hit]:
    seen, out = set(), []
    for n in nodes:
        for h in n.sources:
            key = (h.source, h.heading, h.page)
            if key not in seen:
                seen.add(key)
                out.append(h)
    return out
