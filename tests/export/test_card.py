"""`llmworks export card`: an exported model's evaluation runs go into its model card, replaced on a rerun."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from llmworks.export import export_gguf

from .conftest import assert_one_line_error, cli


def test_card_gets_the_runs_results_once(merged: Path, tmp_path: Path) -> None:
    gguf = tmp_path / "m.q8_0.gguf"
    export_gguf(merged, gguf, "q8_0", evaluate=False, console=Console(stderr=True, quiet=True))
    runs = []
    for name, task in (("smoke", "mmlu-smoke"), ("arc", "arc-smoke")):
        run = tmp_path / name
        r = cli("eval", "run", "--model", str(gguf), "--tasks", task, "-o", str(run))
        assert r.returncode == 0, r.stderr
        runs.append(run)
    r = cli("export", "card", str(gguf), "--eval", str(runs[0]))
    assert r.returncode == 0, r.stderr
    card = Path(f"{gguf}.md").read_text()
    assert "## Evaluation" in card and "| smoke | mmlu-smoke | acc |" in card
    assert card.index("## Evaluation") < card.index("## Use")  # the export's sections stay around it
    r = cli("export", "card", str(gguf), "--eval", str(runs[0]), "--eval", str(runs[1]))
    assert r.returncode == 0, r.stderr
    again = Path(f"{gguf}.md").read_text()
    assert again.count("## Evaluation") == 1 and "| arc | arc-smoke | acc |" in again
    assert again.replace(again[again.index("## Evaluation") : again.index("## Use")], "") == card.replace(
        card[card.index("## Evaluation") : card.index("## Use")], ""
    )  # nothing else in the card changed

    # the tool-use task set, as bench/agent.py prints it (a planner record beside it is not a task-set one)
    bench = tmp_path / "agent.jsonl"
    record = {"bench": "agent.tasks", "loop": "tools", "constrain": True, "tasks": 62, "success": 17,
              "malformed_per_request": 0.0, "by_kind": {"arithmetic": 0.31, "none": 0.5}, "model": str(gguf)}  # fmt: skip
    bench.write_text(
        json.dumps({"bench": "agent.planner", "speedup": 1.4}) + "\n" + json.dumps(record) + "\n"
    )
    r = cli("export", "card", str(gguf), "--eval", str(runs[0]), "--bench", str(bench))
    assert r.returncode == 0, r.stderr
    with_bench = Path(f"{gguf}.md").read_text()
    row = "| agent.jsonl | m.q8_0.gguf | tools | yes | 17/62 | 0.0 | arithmetic 0.31, none 0.50 |"
    assert row in with_bench and with_bench.count("## Evaluation") == 1
    assert with_bench.index(row) < with_bench.index("## Use")
    bench.write_text(json.dumps({"bench": "agent.planner"}) + "\n")
    assert_one_line_error(
        cli("export", "card", str(gguf), "--eval", str(runs[0]), "--bench", str(bench)),
        "no tool-use task-set",
    )
    bench.write_text("{not json\n")
    assert_one_line_error(
        cli("export", "card", str(gguf), "--eval", str(runs[0]), "--bench", str(bench)), "agent.jsonl:1"
    )

    assert_one_line_error(cli("export", "card", str(gguf), "--eval", str(tmp_path)), "has no results.json")
    assert_one_line_error(
        cli("export", "card", str(tmp_path / "none.gguf"), "--eval", str(runs[0])), "no model card"
    )
    assert Path(f"{gguf}.md").read_text() == with_bench  # a failed command changed nothing
