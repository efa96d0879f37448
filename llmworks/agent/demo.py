"""The demo's agent step: doc-helper (configs/agents/doc-helper.yaml) on the embedded model answers one
question from its manual with kb_search and one with the python tool, each run's steps shown the way
`llmworks agent run` shows them.

The two questions are ones the 135M model gets right (greedy, seed 0, one engine thread; checked by
tests/agent/test_demo.py). It does so by copying the worked examples' patterns (llmworks.agent.examples),
and the step says where that stops working.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmworks.agent.run import RunResult

__all__ = ["CASES", "agent_demo"]

# (question, config overrides, the expected answer's words): the function-calling loop for the KB question;
# plan-and-execute for python, because with function calling the model runs the code, then calls python
# again with the same code instead of answering (and the forced answer rambles).
CASES = (
    ("What does the manual say about the license?", (), "Apache-2.0"),
    ("Use python to count the vowels in 'encyclopedia'.", ("loop=plan",), "5"),
)
WEAK = (
    "Where the 135M model is weak: it copies the worked examples. The python code above is the example's "
    "with a new word; code of its own is often broken (asked for 410 / 95 it wrote `print(410 / 95)}}}]} "
    "410 / 95 ...`). Its KB answers are right when one retrieved sentence says it (asked about error E202 "
    "it answered from the wrong passage). Point `model:` or `base_url:` at a larger model for real tasks."
)


def agent_demo(out: Path, console: Any) -> list[RunResult] | None:
    from rich.markup import escape

    from llmworks.agent.cli import show_step
    from llmworks.agent.config import build_agent, load_agent_config
    from llmworks.client import make_client

    config = Path(__file__).resolve().parents[2] / "configs" / "agents" / "doc-helper.yaml"
    if not config.is_file():
        console.print("(skipped: configs/agents/ is not next to the package; run the demo from a clone)")
        return None
    results = []
    # One engine thread: the greedy answers the tests check are the one-thread ones, and on a busy 2-core
    # machine one thread is several times faster than two (tests/agent/test_configs_embedded.py).
    with make_client(n_threads=1) as client:
        for question, overrides, _ in CASES:
            words = " ".join(overrides)
            console.print(
                f'llmworks agent run configs/agents/doc-helper.yaml {words + " " if words else ""}"{question}"',
                markup=False,
                highlight=False,
            )
            cfg = load_agent_config(config, list(overrides))
            agent = build_agent(cfg, client, out / "files", out / "trajectories.jsonl")
            try:
                stream = agent.run_stream(question)
                for step in stream:
                    if step.kind == "answer":  # agent run prints it alone on stdout; here it is labelled
                        console.print(f"[bold]answer:[/bold] {escape(step.text)}", highlight=False)
                    else:
                        show_step(console, step)
            finally:
                agent.close()
            r = stream.result
            assert r is not None
            console.print(
                f"[dim]loop {r.loop} · {r.requests} model calls, {r.tool_calls} tool "
                f"call{'s' if r.tool_calls != 1 else ''}, "
                f"{r.prompt_tokens + r.completion_tokens} tokens, {r.seconds:.1f} s[/dim]"
            )
            results.append(r)
    console.print(WEAK, highlight=False, markup=False)
    console.print(f"trajectories (the training format): {out / 'trajectories.jsonl'}", highlight=False)
    return results
