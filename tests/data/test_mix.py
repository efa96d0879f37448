import hashlib
import json
from pathlib import Path

from data_testing import read_jsonl, run_cli, write_jsonl

from llmworks.data.mix import mix, parse_spec


def _sources(tmp_path: Path) -> tuple[Path, Path]:
    task = write_jsonl(tmp_path / "task.jsonl", [{"text": f"task {i}"} for i in range(100)])
    general = write_jsonl(tmp_path / "general.jsonl", [{"text": f"general {i}"} for i in range(50)])
    return task, general


def test_parse_spec(tmp_path: Path) -> None:
    assert parse_spec("a.jsonl#10").count == 10
    assert parse_spec("a.jsonl:0.5").weight == 0.5
    odd = tmp_path / "odd:1.jsonl"
    odd.write_text("{}\n")
    assert parse_spec(str(odd)).path == str(odd) and parse_spec(str(odd)).weight is None


def test_mix_counts_split_manifest_and_determinism(tmp_path: Path) -> None:
    task, general = _sources(tmp_path)
    r = mix([f"{task}#30", f"{general}:2"], tmp_path / "out", val=0.1, seed=1)
    train, val = read_jsonl(tmp_path / "out" / "train.jsonl"), read_jsonl(tmp_path / "out" / "val.jsonl")
    assert (r.train, r.val) == (len(train), len(val)) == (117, 13)
    texts = [x["text"] for x in train + val]
    assert (
        sum(t.startswith("task") for t in texts) == 30
        and len({t for t in texts if t.startswith("task")}) == 30
    )
    assert sum(t.startswith("general") for t in texts) == 100  # every general record twice
    assert texts[:10] != sorted(texts[:10])  # shuffled
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert (
        m["outputs"]["train.jsonl"]["sha256"]
        == hashlib.sha256((tmp_path / "out" / "train.jsonl").read_bytes()).hexdigest()
    )
    assert [(s["available"], s["taken"]) for s in m["sources"]] == [(100, 30), (50, 100)]
    mix([f"{task}#30", f"{general}:2"], tmp_path / "again", val=0.1, seed=1)
    assert (tmp_path / "again" / "train.jsonl").read_bytes() == (
        tmp_path / "out" / "train.jsonl"
    ).read_bytes()


def test_cli_mix(tmp_path: Path) -> None:
    task, general = _sources(tmp_path)
    r = run_cli("mix", task, f"{general}:0.2", "-o", tmp_path / "out", "--val", "10")
    assert r.exit_code == 0, r.output
    assert "train 100, val 10" in r.output
    r = run_cli("mix", f"{task}#0", "-o", tmp_path / "empty")
    assert r.exit_code == 2 and "empty" in r.error
    assert not (tmp_path / "empty" / "train.jsonl").exists()
    r = run_cli("mix", tmp_path / "nope.jsonl", "-o", tmp_path / "x")
    assert r.exit_code == 2 and "no such file" in r.error
