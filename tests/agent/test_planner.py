"""The MindSearch-style planner: graph validation, nodes in parallel (or not), the events in order, the
answer's citations; then `llmworks agent search` end to end on the embedded model, and its bad input.

The fast tests drive the planner with `TimedClient`: canned replies that take a fixed time, and calls that
run at the same time when made from several threads, as the real client's do (several callers share the
engine's batch). The real test checks that same overlap in the node timings of a real run."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from llmworks.agent.knowledge import FolderKB
from llmworks.agent.planner import (
    GraphError,
    Node,
    Planner,
    graph_grammar_schema,
    graph_schema,
    validate_graph,
)
from llmworks.client.base import ChatChunk, Usage
from llmworks.testing.fake_client import ScriptedClient

KB_TEXT = {
    "encoders.md": "# Encoders\n\nQuill ships two encoders, Brisk and Dense.\n\n## Brisk encoder\n\nBrisk encodes at 410 MB/s.\n\n"
    "## Dense encoder\n\nDense encodes at 95 MB/s.\n",
    "mascot.md": "# Mascot\n\nThe mascot is a heron called Pip.\n",
}


@pytest.fixture
def kb(tmp_path: Path) -> FolderKB:
    folder = tmp_path / "kb"
    folder.mkdir()
    for name, text in KB_TEXT.items():
        (folder / name).write_text(text)
    return FolderKB(folder)


def graph(*nodes: tuple[str, list[int]]) -> dict[str, Any]:
    return {"nodes": [{"id": i, "question": q, "depends_on": d} for i, (q, d) in enumerate(nodes, 1)]}


class TimedClient(ScriptedClient):
    """Replies by request kind (the plan, a node, the final answer), each after `delay` seconds; records
    when each call ran. Thread-safe: calls from several threads overlap."""

    def __init__(self, plan: str, delay: float = 0.0, node_answer: str = "It is 410 MB/s.") -> None:
        super().__init__([""])
        self.plan, self.delay, self.node_answer = plan, delay, node_answer
        self.spans: list[tuple[str, float, float]] = []
        self.lock = threading.Lock()

    def chat_stream(self, messages: Sequence[Any], **options: Any) -> Iterator[ChatChunk]:
        started = time.monotonic()
        with self.lock:
            self.calls.append(([dict(m) for m in messages], options))  # type: ignore[arg-type]
        name = (options.get("response_format") or {}).get("json_schema", {}).get("name")
        prompt = messages[-1]["content"]
        kind = (
            "plan"
            if name == "graph"
            else "answer"
            if prompt.startswith("Answer the question from")
            else "node"
        )
        reply = {"plan": self.plan, "node": json.dumps({"answer": self.node_answer})}.get(
            kind, json.dumps({"answer": "Brisk is faster."})
        )
        time.sleep(self.delay)
        with self.lock:
            self.spans.append((prompt if kind == "node" else kind, started, time.monotonic()))
        return iter([ChatChunk(reply, [], "stop", Usage(1, 1))])


# -- the graph --


@pytest.mark.parametrize(
    ("obj", "why"),
    [
        (graph(("How fast is Brisk?", [2]), ("How fast is Dense?", [1])), "node 1 depends on [2]"),  # a cycle
        (graph(("How fast is Brisk?", []), ("How fast is Dense?", [3])), "node 2 depends on [3]"),
        (graph(("How fast is Brisk?", [1])), "node 1 depends on [1]"),
        (graph(*[(f"Sub-question number {i}?", []) for i in range(5)]), "is too long"),
        ({"nodes": [{"id": 2, "question": "How fast is Brisk?", "depends_on": []}]}, "has id 2"),
        ({"nodes": []}, "should be non-empty"),
        ({"nodes": [{"question": "How fast is Brisk?", "depends_on": []}]}, "'id' is a required property"),
        ({"steps": []}, "'nodes' is a required property"),
    ],
)
def test_a_graph_that_is_not_a_dag_numbered_from_1_is_rejected(obj: dict[str, Any], why: str) -> None:
    with pytest.raises(GraphError, match=re.escape(why)):
        validate_graph(obj, max_nodes=4)


def test_a_valid_graph_becomes_nodes() -> None:
    obj = graph(("How fast is Brisk?", []), ("How fast is Dense?", []), ("Which is faster?", [2, 1, 1]))
    nodes = validate_graph(obj, 4)
    assert [(n.id, n.question, n.depends_on) for n in nodes] == [
        (1, "How fast is Brisk?", []),
        (2, "How fast is Dense?", []),
        (3, "Which is faster?", [1, 2]),
    ]
    assert graph_schema(4)["properties"]["nodes"]["maxItems"] == 4


def test_a_repeated_sub_question_is_merged_into_the_first() -> None:
    obj = graph(
        ("How fast is Brisk?", []),
        ("how fast is brisk", []),
        ("How fast is Dense?", [2]),
        ("Which is faster?", [3, 2]),
    )
    nodes = validate_graph(obj, 4)
    assert [(n.id, n.question, n.depends_on) for n in nodes] == [
        (1, "How fast is Brisk?", []),
        (2, "How fast is Dense?", [1]),
        (3, "Which is faster?", [1, 2]),
    ]


def test_the_grammar_admits_only_valid_graphs() -> None:
    """The constrained schema (by position) accepts the valid graphs and refuses forward dependencies."""
    import jsonschema

    strict = graph_grammar_schema(4)
    ok = graph(("How fast is Brisk?", []), ("How fast is Dense?", []), ("Which is faster?", [1, 2]))
    jsonschema.validate(ok, strict)
    validate_graph(ok, 4)
    for bad in (
        graph(("How fast is Brisk?", [1])),
        graph(("How fast is Brisk?", []), ("How fast is Dense?", [2])),
        graph(*[(f"Sub-question number {i}?", []) for i in range(5)]),
        {"nodes": [{"id": 2, "question": "How fast is Brisk?", "depends_on": []}]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, strict)


def test_the_plan_is_asked_for_under_the_schema_and_a_bad_plan_is_one_node(kb: FolderKB) -> None:
    client = TimedClient(json.dumps(graph(("How fast is Brisk?", [2]), ("How fast is Dense?", []))))
    result = Planner(client, [kb]).run("Compare the two encoders")
    messages, options = client.calls[0]
    assert options["response_format"]["json_schema"]["schema"] == graph_grammar_schema(4)
    assert "two encoders, Brisk and Dense" in messages[-1]["content"]  # the planner reads the best passages
    notice = next(s for s in result.steps if s.kind == "notice")
    assert "node 1 depends on [2]" in notice.text
    assert [n.question for n in result.nodes] == ["Compare the two encoders"]


def test_a_plan_that_copies_the_worked_example_is_not_used(kb: FolderKB) -> None:
    copied = graph(("What does the Basic plan cost?", []), ("What does the Pro plan cost?", []))
    result = Planner(TimedClient(json.dumps(copied)), [kb]).run("Compare the two encoders")
    assert [n.question for n in result.nodes] == ["Compare the two encoders"]
    assert any("copies the example" in s.text for s in result.steps if s.kind == "notice")


# -- running it --

FOUR = graph(
    ("How fast is the Brisk encoder?", []),
    ("How fast is the Dense encoder?", []),
    ("What is the mascot?", []),
    ("Which encoder is faster?", [1, 2]),
)


def test_independent_nodes_overlap_in_parallel_and_not_one_after_another(kb: FolderKB) -> None:
    spans = {}
    for parallel in (True, False):
        client = TimedClient(json.dumps(FOUR), delay=0.2)
        result = Planner(client, [kb]).run("Compare the two encoders", parallel=parallel)
        nodes = {s[0]: (s[1], s[2]) for s in client.spans if s[0] not in ("plan", "answer")}
        assert len(nodes) == 4
        spans[parallel] = (sorted(nodes.values()), result)
    (first, second, third, last), par = spans[True]
    # 1, 2 and 3 run together; 4 starts only after 1 and 2 have ended
    assert third[0] < first[1] and second[0] < first[1]
    assert last[0] >= max(first[1], second[1])
    assert par.nodes_seconds < 0.2 * 2 + 0.15
    seq_spans, seq = spans[False]
    assert all(b[0] >= a[1] for a, b in itertools.pairwise(seq_spans))
    assert seq.nodes_seconds >= 0.2 * 4
    # what a node depending on others is told: their answers
    node4 = next(m for m, _ in client.calls if "Which encoder is faster?" in m[-1]["content"])
    assert "Known: How fast is the Brisk encoder? It is 410 MB/s." in node4[-1]["content"]


def test_events_stream_in_order_graph_nodes_answer(kb: FolderKB) -> None:
    stream = Planner(TimedClient(json.dumps(FOUR), delay=0.05), [kb]).run_stream("Compare the two encoders")
    events = [(s.kind, (s.data or {}).get("id"), (s.data or {}).get("status")) for s in stream]
    assert events[0] == ("graph", None, None) and events[-1][0] == "answer"
    for i in range(1, 5):
        assert events.index(("node", i, "running")) < events.index(("node", i, "done"))
    assert events.index(("node", 4, "running")) > max(events.index(("node", i, "done")) for i in (1, 2))
    assert len(events) == 1 + 4 * 2 + 1
    assert stream.result is not None and stream.result.steps[0].data["edges"] == [[1, 4], [2, 4]]


def test_the_answer_cites_the_sources_of_the_nodes_that_found_something(kb: FolderKB) -> None:
    two = graph(("How fast is the Brisk encoder?", []), ("How fast is the Dense encoder?", []))
    client = TimedClient(json.dumps(two))
    result = Planner(client, [kb], k=1).run("Compare the two encoders")
    assert [n.sources[0].heading for n in result.nodes] == ["Brisk encoder", "Dense encoder"]
    assert result.answer == (
        "Brisk is faster.\n\nSources: [1] encoders.md § Brisk encoder; [2] encoders.md § Dense encoder"
    )
    assert result.to_dict()["sources"] == ["encoders.md § Brisk encoder", "encoders.md § Dense encoder"]
    # a node that found nothing adds no source
    unknown = Planner(TimedClient(json.dumps(two), node_answer="unknown"), [kb], k=1)
    assert "Sources" not in unknown.run("Compare the two encoders").answer


def test_a_given_graph_is_run_without_planning(kb: FolderKB) -> None:
    client = TimedClient("not json")
    result = Planner(client, [kb]).run("Compare", nodes=[Node(1, "How fast is Brisk?")])
    assert "plan" not in [s[0] for s in client.spans]
    assert [n.status for n in result.nodes] == ["done"]


# -- the command line --


def _search(*args: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmworks.cli", "agent", "search", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        cwd=cwd,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--kb", "no/such/folder", "Which is faster?"], "knowledge base folder"),
        (["--kb", "nosuchkb", "Which is faster?"], "no knowledge base 'nosuchkb'"),
        (["Which is faster?"], "no knowledge base given"),
        (["--kb", "kb", "--nodes", "0", "Which is faster?"], "--nodes 0 is out of range"),
        (["--kb", "kb", " "], "the question is empty"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "a.md").write_text("# A\n\nText.\n")
    r = _search(*args, cwd=tmp_path, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.stderr


@pytest.mark.slow
def test_search_end_to_end_on_the_embedded_model(embedded_gguf: Path, tmp_path: Path) -> None:
    """Two sub-questions on a two-file KB, in parallel through one client: the answer on stdout, progress
    on stderr, a self-contained graph.html and result.json whose node timings overlap."""
    folder = tmp_path / "kb"
    folder.mkdir()
    for name, text in KB_TEXT.items():
        (folder / name).write_text(text)
    out = tmp_path / "out"
    r = _search(
        "--kb",
        str(folder),
        "--nodes",
        "2",
        "How fast are Brisk and Dense?",
        "-o",
        str(out),
        cwd=tmp_path,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "node #1" in r.stderr and "✓ #1" in r.stderr and "in parallel" in r.stderr
    assert r.stdout.strip() and "{" not in r.stderr  # no JSON on the terminal
    result = json.loads((out / "result.json").read_text())
    assert result["answer"] == r.stdout.strip()
    nodes = result["nodes"]
    assert all(n["status"] == "done" for n in nodes)
    if len(nodes) > 1 and not any(n["depends_on"] for n in nodes):  # the plan may be one node
        (a, b) = sorted(nodes, key=lambda n: n["started"])[:2]
        assert b["started"] < a["started"] + a["seconds"]  # they ran at the same time
    for n in nodes:
        assert all(s["source"] in KB_TEXT for s in n["sources"])
    assert set(result["sources"]) <= {s["cite"] for n in nodes for s in n["sources"]}
    html = (out / "graph.html").read_text()
    assert html.startswith("<!doctype html>") and 'data-node="1"' in html
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:)?//", html) and "<script" not in html


def test_a_planner_config_builds_a_planner_and_is_not_a_tool_loop(kb: FolderKB, tmp_path: Path) -> None:
    from llmworks.agent.config import build_agent, build_planner, load_agent_config
    from llmworks.errors import UserError

    cfg_path = tmp_path / "searcher.yaml"
    cfg_path.write_text("name: searcher\nloop: planner\nkbs: [kb/]\nmax_nodes: 3\n")
    cfg = load_agent_config(cfg_path)
    planner = build_planner(cfg, TimedClient(json.dumps(FOUR)))
    assert planner.max_nodes == 3 and [s.name for s in planner.sources] == ["kb"]
    with pytest.raises(UserError, match="loop: planner, which runs in llmworks serve"):
        build_agent(cfg, TimedClient(""))
    with pytest.raises(UserError, match="loop: planner needs kbs"):
        build_planner(load_agent_config(None, ["loop=planner"]), TimedClient(""))


@pytest.mark.slow
def test_nodes_share_the_batch_of_one_real_client(embedded_gguf: Path, kb: FolderKB) -> None:
    """What TimedClient assumes, on the embedded model: two independent nodes through one client with two
    slots are in flight at the same time, and each gets the answer and sources it gets when run alone.
    Whether that is faster is bench/agent.py's measure (on 2 busy cores it may not be)."""
    from llmworks.client import make_client

    def graph() -> list[Node]:
        return [Node(1, "How fast is the Brisk encoder?"), Node(2, "How fast is the Dense encoder?")]

    with make_client(str(embedded_gguf), parallel=2, n_threads=1) as client:  # 1: faster on busy cores
        planner = Planner(client, [kb], k=1, node_tokens=48, answer_tokens=16, constrain=False)
        planner.run("Compare", nodes=graph())  # warm-up: the prompts' shared prefix is cached for both runs
        seq = planner.run("Compare", parallel=False, nodes=graph())
        par = planner.run("Compare", parallel=True, nodes=graph())
    a, b = sorted(par.nodes, key=lambda n: n.started)
    assert b.started < a.started + a.seconds
    assert [n.sources[0].heading for n in par.nodes] == ["Brisk encoder", "Dense encoder"]
    assert [n.answer for n in par.nodes] == [n.answer for n in seq.nodes]  # greedy: the same either way


def test_the_graph_html_draws_every_node_and_edge_and_escapes_text(kb: FolderKB) -> None:
    from llmworks.agent.graph_html import graph_html

    tricky = graph(
        ("What is <b>Brisk</b>?", []), ("How fast is the Dense encoder?", []), ("Which is faster?", [1, 2])
    )
    result = Planner(TimedClient(json.dumps(tricky)), [kb]).run("Compare & contrast")
    html = graph_html(result)
    assert [f'data-node="{i}"' in html for i in (1, 2, 3)] == [True] * 3
    assert html.count('class="edge"') == 2 and "<b>Brisk</b>" not in html and "&lt;b&gt;Brisk" in html
    assert "Compare &amp; contrast" in html and "3 sub-questions" in html
    assert "<script" not in html and "http" not in html.replace("http://www.w3.org", "")
