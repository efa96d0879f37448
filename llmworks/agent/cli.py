"""`llmworks agent run|chat|search|tools|roleplay`: agents on the command line, steps shown as they happen.

    llmworks agent run "What is 17% of 2,340, and plot 1..10 squared" --tools python,calculator,chart
    llmworks agent run configs/agents/doc-helper.yaml "Which encoder is faster?"
    llmworks agent chat configs/agents/doc-helper.yaml
    llmworks agent search --kb configs/agents/manual "Compare the two encoders and say which is faster" -o out/s
    llmworks agent tools
    llmworks agent roleplay configs/agents/instructor.yaml configs/agents/calc-helper.yaml --task "..."

Positional arguments are an optional CONFIG.yaml then the task; `key=value` words override config keys.
Every run appends its trajectory to OUT/trajectories.jsonl (messages + tool_calls, for `llmworks train`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmworks.agent.config import AgentConfig
from llmworks.config_cli import ConfigFile, arguments, from_cli, option, save_beside, split_args
from llmworks.data.config import DemoConfig, ToolCallsConfig
from llmworks.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console

    from llmworks.agent.run import Step

app = typer.Typer(
    help="Agents: tools, function-calling / ReAct / plan-and-execute loops, a planner, agents from configs.",
    no_args_is_help=True,
    add_completion=False,
)

Args = Annotated[
    list[str] | None,
    typer.Argument(
        help="[CONFIG.yaml] TASK, then key=value overrides of any config key (see --help of the options).",
        show_default=False,
        metavar="ARGS",
    ),
]
Tools = Annotated[str | None, option(AgentConfig, "tools", "--tools")]
Loop = Annotated[str | None, option(AgentConfig, "loop")]
Kb = Annotated[list[str] | None, option(AgentConfig, "kbs", "--kb")]
Model = Annotated[str | None, option(AgentConfig, "model")]
BaseUrl = Annotated[str | None, option(AgentConfig, "base_url")]
Constrain = Annotated[bool | None, option(AgentConfig, "constrain")]
Out = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Where trajectories and files go (default: out/agent/NAME)."),
]


@app.command()
def run(
    args: Args = None,
    config: ConfigFile = None,
    tools: Tools = None,
    loop: Loop = None,
    kb: Kb = None,
    model: Model = None,
    base_url: BaseUrl = None,
    constrain: Constrain = None,
    output: Out = None,
) -> None:
    """Run an agent on one task: its steps as they happen, then the answer."""
    cfg, words = _config(config, args, tools, loop, kb, model, base_url, constrain)
    if not words:
        raise UserError("no task given.", 'Give the task, e.g. llmworks agent run "What is 17% of 2340?"')
    task = " ".join(words)
    agent, out, console = _agent(cfg, output)
    try:
        console.print(
            f"[dim]agent {cfg.name} · loop {cfg.loop} · tools {', '.join(t.name for t in agent.tools)}[/dim]"
        )
        stream = agent.run_stream(task)
        for step in stream:
            show_step(console, step)
        assert stream.result is not None
        _summary(console, stream.result, out)
    finally:
        agent.close()


@app.command()
def chat(
    args: Args = None,
    config: ConfigFile = None,
    tools: Tools = None,
    loop: Loop = None,
    kb: Kb = None,
    model: Model = None,
    base_url: BaseUrl = None,
    constrain: Constrain = None,
    output: Out = None,
) -> None:
    """Chat with an agent, several turns (it remembers the conversation); an empty line or Ctrl-D ends it."""
    cfg, words = _config(config, args, tools, loop, kb, model, base_url, constrain)
    agent, out, console = _agent(cfg, output)
    history: list[dict[str, Any]] = []
    if cfg.suggestions:
        console.print("[dim]Try: " + " · ".join(cfg.suggestions) + "[/dim]")
    pending = " ".join(words) if words else None
    try:
        while True:
            if pending is None:
                try:
                    pending = console.input("[bold]you>[/bold] ").strip()
                except EOFError:
                    break
                if not pending:
                    break
            stream = agent.run_stream(pending, history)
            for step in stream:
                show_step(console, step)
            assert stream.result is not None
            history += [
                {"role": "user", "content": pending},
                {"role": "assistant", "content": stream.result.answer},
            ]
            pending = None
    finally:
        agent.close()
    console.print(f"[dim]trajectories: {out / 'trajectories.jsonl'}[/dim]")


@app.command()
def search(
    question: Annotated[list[str], typer.Argument(help="The question.", show_default=False)],
    kb: Kb = None,
    model: Model = None,
    base_url: BaseUrl = None,
    nodes: Annotated[int, typer.Option("--nodes", help="At most this many sub-questions.")] = 4,
    sequential: Annotated[
        bool, typer.Option("--sequential", help="Run the nodes one after another.")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write graph.html and result.json here.")
    ] = None,
) -> None:
    """Plan a graph of sub-questions, search them in parallel, answer with the sources (MindSearch-style)."""
    import json

    from llmworks.agent.knowledge import open_kb
    from llmworks.agent.planner import Planner
    from llmworks.client import make_client
    from llmworks.console import make_console

    if not kb:
        raise UserError(
            "no knowledge base given.", "Give one: --kb DIR (or the name of a RAG knowledge base)."
        )
    if not 1 <= nodes <= 8:
        raise UserError(f"--nodes {nodes} is out of range.", "Give 1 to 8 sub-questions.")
    text = " ".join(question).strip()
    if not text:
        raise UserError("the question is empty.", 'Ask something, e.g. "Which encoder is faster?"')
    console = make_console(stderr=True)
    kbs = [open_kb(k, Path.cwd()) for k in kb]
    with make_client(model, base_url, parallel=nodes) as client:
        planner = Planner(client, kbs, max_nodes=nodes)
        stream = planner.run_stream(text, parallel=not sequential)
        for step in stream:
            show_step(console, step)
    result = stream.result
    assert result is not None
    console.print(
        f"[dim]{len(result.nodes)} nodes {'one after another' if sequential else 'in parallel'}: "
        f"plan {result.plan_seconds:.1f} s, nodes {result.nodes_seconds:.1f} s, total {result.seconds:.1f} s[/dim]"
    )
    if output is not None:
        from llmworks.agent.graph_html import graph_html
        from llmworks.atomic import atomic_write

        atomic_write(output / "graph.html", graph_html(result))
        atomic_write(output / "result.json", json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        console.print(f"graph: {output / 'graph.html'}")


@app.command("tools")
def list_tools(
    as_json: Annotated[bool, typer.Option("--json", help="Print the OpenAI tool schemas as JSON.")] = False,
) -> None:
    """The built-in tools and their parameter schemas."""
    import json

    from llmworks.agent.tools import builtin_specs

    specs = builtin_specs()
    if as_json:
        print(json.dumps(specs, indent=2, ensure_ascii=False))
        return
    for s in specs:
        fn = s["function"]
        print(f"{fn['name']}: {fn['description']}")
        print(f"  parameters: {json.dumps(fn['parameters'], ensure_ascii=False)}")


@app.command()
def roleplay(
    configs: Annotated[
        list[Path], typer.Argument(help="Two agent configs: the one who instructs, then the one who solves.")
    ],
    task: Annotated[str, typer.Option("--task", help="The task they work on together.")],
    turns: Annotated[int, typer.Option("--turns", help="At most this many turns each.")] = 4,
    stop: Annotated[str, typer.Option("--stop", help="The phrase that ends the conversation.")] = "TASK_DONE",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where the transcript goes.")] = None,
) -> None:
    """Two agents talk (Camel-style): the first instructs, the second solves, until the stop phrase."""
    from llmworks.agent.config import build_agent, load_agent_config
    from llmworks.agent.roleplay import roleplay as run_roleplay
    from llmworks.client import make_client
    from llmworks.console import make_console

    if len(configs) != 2:
        raise typer.BadParameter("give exactly two agent configs: the instructor, then the solver")
    if turns < 1:
        raise typer.BadParameter("--turns must be at least 1")
    if not stop.strip():
        raise typer.BadParameter("--stop must be a phrase")
    console = make_console(stderr=True)
    a_cfg, b_cfg = (load_agent_config(p) for p in configs)
    out = output or Path("out/agent/roleplay")
    client = make_client(a_cfg.model, a_cfg.base_url, a_cfg.api_key)
    same = (a_cfg.model, a_cfg.base_url) == (b_cfg.model, b_cfg.base_url)
    a = build_agent(a_cfg, client, out / "files" / a_cfg.name)
    b = build_agent(b_cfg, client if same else None, out / "files" / b_cfg.name)
    try:
        transcript = run_roleplay(
            a, b, task, turns=turns, stop=stop, on_turn=lambda t: _show_turn(console, t)
        )
        path = transcript.save(out / "transcript.jsonl")
        console.print(
            f"[dim]{len(transcript.turns)} turns, ended by the {transcript.ended}; transcript: {path} "
            f"(and {path.with_suffix('.md').name})[/dim]"
        )
    finally:
        a.close()
        b.close()
        client.close()


# -- helpers --


def _config(
    config: Path | None,
    args: list[str] | None,
    tools: str | None,
    loop: str | None,
    kb: list[str] | None,
    model: str | None,
    base_url: str | None,
    constrain: bool | None,
) -> tuple[AgentConfig, list[str]]:
    """The agent's config (`--config FILE` or a first argument ending in .yaml, then key=value, then
    flags) and the task's words."""
    from llmworks.agent.config import load_agent_config

    words, overrides = split_args(args)
    path: Path | str | None = config
    if words and words[0].endswith((".yaml", ".yml")):
        if config is not None:
            raise UserError(
                f"two agent configs given: --config {config} and {words[0]}.", "Give one of them."
            )
        path = words.pop(0)
    flags: dict[str, Any] = {"loop": loop, "model": model, "base_url": base_url, "constrain": constrain}
    if tools is not None:
        flags["tools"] = [t.strip() for t in tools.split(",") if t.strip()]
    if kb:
        flags["kbs"] = kb
        if tools is None and path is None:
            flags["tools"] = ["kb_search"]
    return load_agent_config(path, overrides, **flags), words


def _agent(cfg: AgentConfig, output: Path | None) -> tuple[Any, Path, Console]:
    import time

    from llmworks.agent.config import build_agent
    from llmworks.console import make_console

    console = make_console(stderr=True)
    out = output or Path("out/agent") / cfg.name
    run_id = time.strftime("%Y%m%d-%H%M%S")
    agent = build_agent(cfg, files_dir=out / "files" / run_id, trajectory=out / "trajectories.jsonl")
    cfg.save(out / "config.yaml", f"llmworks agent run --config {out / 'config.yaml'}")
    return agent, out, console


def show_step(console: Console, step: Step) -> None:
    """One step, as the terminal shows it."""
    import json

    from rich.markup import escape

    if step.kind == "thought":
        console.print(f"[cyan]thought[/cyan] {escape(step.text)}")
    elif step.kind == "call":
        args = (
            json.dumps(step.arguments, ensure_ascii=False)
            if not isinstance(step.arguments, str)
            else step.arguments
        )
        console.print(f"[yellow]→ {escape(step.tool or '')}[/yellow] {escape(args)}")
    elif step.kind == "observation":
        text = step.text if len(step.text) < 600 else step.text[:600] + " …"
        color = "red" if step.error else "green"
        console.print(f"[{color}]← {escape(text)}[/{color}]")
        for f in step.files:
            console.print(f"  [dim]file: {escape(f)}[/dim]")
    elif step.kind == "notice":
        console.print(f"[magenta]! {escape(step.text)}[/magenta]")
    elif step.kind == "graph":
        for n in (step.data or {}).get("nodes", []):
            deps = f" (after {', '.join(f'#{d}' for d in n['depends_on'])})" if n["depends_on"] else ""
            console.print(f"[cyan]node #{n['id']}[/cyan] {escape(n['question'])}{deps}")
    elif step.kind == "node":
        n = step.data or {}
        if n.get("status") == "running":
            console.print(f"[dim]… #{n['id']} searching[/dim]")
        else:
            cites = ", ".join(s["cite"] for s in n.get("sources", [])[:3])
            console.print(
                f"[green]✓ #{n['id']}[/green] {escape(_clip(n['answer'], 200))} "
                f"[dim]({n['seconds']:.1f} s{'; ' + escape(cites) if cites else ''})[/dim]"
            )
    elif step.kind == "answer":
        print(step.text, flush=True)  # the answer alone on stdout, so it can be piped


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _summary(console: Console, result: Any, out: Path) -> None:
    console.print(
        f"[dim]{result.requests} model calls, {result.tool_calls} tool calls, "
        f"{result.prompt_tokens + result.completion_tokens} tokens, {result.seconds:.1f} s"
        + (f"; stopped: {result.stopped}" if result.stopped else "")
        + f"; trajectory: {out / 'trajectories.jsonl'}[/dim]"
    )


def _show_turn(console: Console, turn: Any) -> None:
    from rich.markup import escape

    console.print(f"[bold]{escape(turn.speaker)}[/bold]: {escape(turn.text)}")


# `llmworks data synth tool-calls` runs this stage's tools for real, so the command lives here (data must
# not import agent); the root CLI adds it to `data synth`.
def synth_tool_calls(
    overrides: Annotated[list[str] | None, arguments(ToolCallsConfig)] = None,
    config: ConfigFile = None,
    tools: Annotated[str | None, option(ToolCallsConfig, "tools")] = None,
    output: Annotated[Path | None, option(ToolCallsConfig, "output", "-o", "--output")] = None,
    n: Annotated[int | None, option(ToolCallsConfig, "n", "-n")] = None,
    kinds: Annotated[str | None, option(ToolCallsConfig, "kinds")] = None,
    offer_all: Annotated[bool | None, option(ToolCallsConfig, "offer_all")] = None,
    paraphrase: Annotated[bool | None, option(ToolCallsConfig, "paraphrase")] = None,
    model: Annotated[str | None, option(ToolCallsConfig, "model")] = None,
    base_url: Annotated[str | None, option(ToolCallsConfig, "base_url")] = None,
    max_attempts: Annotated[int | None, option(ToolCallsConfig, "max_attempts")] = None,
    seed: Annotated[int | None, option(ToolCallsConfig, "seed")] = None,
) -> None:
    """Tool-calling SFT data: one call, two calls, no tool, a tool not on offer, follow-ups; calls validated,
    tools really run."""
    import json
    import tempfile
    from contextlib import ExitStack

    from llmworks.agent.tools.synth import builtin_specs
    from llmworks.atomic import atomic_write
    from llmworks.client import make_client
    from llmworks.data.builtin import TOOL_CATALOG
    from llmworks.data.cli import config_path, out
    from llmworks.data.io import JsonlWriter
    from llmworks.data.progress import advance, progress
    from llmworks.data.synth.tool_calls import SynthReport, read_tool_file
    from llmworks.data.synth.tool_calls import synth_tool_calls as run
    from llmworks.errors import UserError

    cfg = from_cli(
        ToolCallsConfig, config, overrides,
        tools=tools, output=output, n=n, kinds=kinds, offer_all=offer_all, paraphrase=paraphrase, model=model,
        base_url=base_url, max_attempts=max_attempts, seed=seed,
    )  # fmt: skip
    assert cfg.output is not None
    output = cfg.output
    files = [TOOL_CATALOG if src == "catalog" else src for src in cfg.tools if src != "builtin"]
    specs = [s for f in files for s in read_tool_file(f)]  # checked before any model
    report = SynthReport()
    with ExitStack() as stack:
        if "builtin" in cfg.tools:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="llmworks-toolsynth-")))
            specs = stack.enter_context(builtin_specs(scratch)) + specs
        names = [s.name for s in specs]
        dup = sorted({x for x in names if names.count(x) > 1})
        if dup:
            raise UserError(f"tool names appear twice: {', '.join(dup)}.", "Rename them in your tools file.")
        client = stack.enter_context(make_client(cfg.model, cfg.base_url))
        w = stack.enter_context(JsonlWriter(output, "examples"))
        bar = stack.enter_context(progress("tool-calls", cfg.n, unit="items"))
        w.empty_reason = "every example was rejected"
        made = run(
            specs, cfg.n, client, report, cfg.paraphrase, cfg.seed, cfg.max_attempts, kinds=cfg.kinds,
            offer_all=cfg.offer_all,
        )  # fmt: skip
        for rec in made:
            w.write(rec)
            advance(bar)
    manifest = output.with_name(output.name + ".manifest.json")
    atomic_write(manifest, json.dumps({"output": str(output), **report.manifest()}, indent=2) + "\n")
    save_beside(cfg, config_path(output), "llmworks data synth tool-calls")
    m = report.manifest()
    kinds = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in m["kinds"].items())
    out.print(
        f"wrote {m['examples']} examples to {output} ({kinds}) at {m['examples_per_second']} examples/s"
    )
    for what, c in (("calls", m["calls"]), ("model-written calls", m["model_calls"])):
        if c["accepted"] or c["rejected"]:
            why = ", ".join(f"{k} {v}" for k, v in c["rejected_by"].items()) or "none"
            out.print(f"  {what}: {c['accepted']} accepted, {c['rejected']} rejected ({why})")
    run_here = [t for t, how in m["tool_results"].items() if how == "run"]
    synthesized = [t for t, how in m["tool_results"].items() if how != "run"]
    shown = (
        ", ".join(synthesized)
        if len(synthesized) <= 8
        else f"{len(synthesized)} tools ({synthesized[0]}, ...)"
    )
    out.print(
        f"  tool results: run for {', '.join(run_here) or 'none'}"
        + (f"; synthesized from the call for {shown}" if synthesized else "")
    )
    dropped = ", ".join(f"{k} {v}" for k, v in m["dropped"].items())
    out.print(
        f"  duplicates removed: {m['duplicates_removed']}" + (f"; dropped: {dropped}" if dropped else "")
    )
    out.print(f"manifest: {manifest}")


# `llmworks data demo` runs the demo tools to make its tool-use records: above data, like synth tool-calls.
def data_demo(
    overrides: Annotated[list[str] | None, arguments(DemoConfig)] = None,
    config: ConfigFile = None,
    output: Annotated[Path | None, option(DemoConfig, "output", "-o", "--output")] = None,
    name: Annotated[str | None, option(DemoConfig, "name")] = None,
    author: Annotated[str | None, option(DemoConfig, "author")] = None,
    tokenizer: Annotated[str | None, option(DemoConfig, "tokenizer")] = None,
    seed: Annotated[int | None, option(DemoConfig, "seed")] = None,
    distill_model: Annotated[str | None, option(DemoConfig, "distill_model")] = None,
) -> None:
    """Build the demo training set: self-cognition, sentiment, two-turn memory, general answers and tool use
    (speak, chart, python), mixed."""
    from llmworks.agent.tools.synth import demo_specs
    from llmworks.data.builtin import build_demo_data
    from llmworks.data.cli import out

    cfg = from_cli(
        DemoConfig, config, overrides,
        output=output, name=name, author=author, tokenizer=tokenizer, seed=seed, distill_model=distill_model,
    )  # fmt: skip
    assert cfg.output is not None
    with demo_specs() as tools:
        build_demo_data(
            cfg.output, cfg.name, cfg.author, tokenizer=cfg.tokenizer, seed=cfg.seed, console=out,
            distill_model=cfg.distill_model, tools=tools,
        )  # fmt: skip
    save_beside(cfg, cfg.output / "config.yaml", "llmworks data demo")
