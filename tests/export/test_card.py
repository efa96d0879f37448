"""`llmworks export card`: an exported model's evaluation runs go into its model card, replaced on a rerun."""

from __future__ import annotations

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

    assert_one_line_error(cli("export", "card", str(gguf), "--eval", str(tmp_path)), "has no results.json")
    assert_one_line_error(
        cli("export", "card", str(tmp_path / "none.gguf"), "--eval", str(runs[0])), "no model card"
    )
    assert Path(f"{gguf}.md").read_text() == again  # a failed command changed nothing
