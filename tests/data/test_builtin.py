import re
from collections import Counter
from pathlib import Path

from data_testing import read_jsonl, run_cli

from llmworks.data.builtin import general_messages, sentiment_messages, sentiment_records


def test_sentiment_set_is_balanced_split_and_varied() -> None:
    recs = list(sentiment_records())
    assert Counter((r["split"], r["label"]) for r in recs) == {
        ("train", "positive"): 100,
        ("train", "negative"): 100,
        ("test", "positive"): 50,
        ("test", "negative"): 50,
    }
    texts = [r["text"] for r in recs]
    assert len(set(texts)) == 300
    assert len({" ".join(t.lower().split()[:3]) for t in texts}) > 250  # not one template
    vocab = {w for t in texts for w in re.findall(r"[a-z']+", t.lower())}
    assert len(vocab) > 1000
    msg = next(sentiment_messages("test"))["messages"]
    assert msg[0]["content"].startswith("Classify the sentiment") and msg[0]["content"].count(
        "positive or negative"
    )
    assert msg[1]["content"] in ("positive", "negative")


def test_cli_demo_builds_the_training_set(tmp_path: Path, tiny_tokenizer: Path) -> None:
    r = run_cli(
        "demo", "-o", tmp_path / "demo", "--name", "Ada", "--author", "Acme", "--tokenizer", tiny_tokenizer
    )
    assert r.exit_code == 0, r.output
    train = read_jsonl(tmp_path / "demo" / "train.jsonl")
    val = read_jsonl(tmp_path / "demo" / "val.jsonl")
    n_general = len(general_messages())  # cached: the first call distills from the embedded model
    assert 15 <= n_general <= 72  # answers cut off by max_tokens are left out
    # sentiment#120 + self-cognition (en + zh) + memory#60 + general:2 + tool use (30 calls, 8 without)
    assert len(train) + len(val) == 120 + 91 + 60 + 2 * n_general + 38
    answers = Counter(rec["messages"][-1]["content"] for rec in train + val)
    assert answers["positive"] + answers["negative"] == 120
    tool_use = [rec for rec in train + val if "tools" in rec]
    assert all(
        [t["function"]["name"] for t in rec["tools"]] == ["speak", "chart", "python"] for rec in tool_use
    )
    calls = Counter(
        c["function"]["name"] for rec in tool_use for m in rec["messages"] for c in m.get("tool_calls", [])
    )
    assert calls == {"speak": 10, "chart": 10, "python": 10} and len(tool_use) == 38
    offered = [t["function"] for rec in tool_use for t in rec["tools"]]  # brief schemas: short prompts
    assert all(
        "description" not in str(f["parameters"]) and f["description"].count(".") == 1 for f in offered
    )
    assert "tokens per record" in r.output and (tmp_path / "demo" / "manifest.json").exists()
