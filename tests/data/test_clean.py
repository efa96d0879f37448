import random
from pathlib import Path

import pytest
from data_testing import read_jsonl, run_cli, write_jsonl

from llmworks.data.clean import CleanConfig, clean, mask_pii, normalized, repetition
from llmworks.data.near_dedupe import near_duplicates
from llmworks.errors import UserError


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("mail john.doe@example.co.uk now", "mail <EMAIL> now"),
        ("call +44 20 7946 0958 or (555) 123-4567", "call <PHONE> or <PHONE>"),
        ("手机 13812345678", "手机 <PHONE>"),
        ("身份证 11010519491231002X", "身份证 <ID_NUMBER>"),
        ("SSN 123-45-6789.", "SSN <ID_NUMBER>."),
        ("server 10.0.0.254 and fe80:0:0:0:202:b3ff:fe1e:8329", "server <IP_ADDRESS> and <IP_ADDRESS>"),
        ("In 2024 it cost 1234.56 dollars, version 1.2.3", "In 2024 it cost 1234.56 dollars, version 1.2.3"),
    ],
)
def test_pii_masking(text: str, masked: str) -> None:
    assert mask_pii(text)[0] == masked


def test_repetition_and_normalization() -> None:
    assert repetition("buy now " * 20) > 0.8
    assert repetition("Fine-tuning adapts a pretrained model to a task with a small dataset.") == 0
    assert normalized("Hello,   WORLD!") == normalized("hello world")


def _doc(rng: random.Random, words: list[str], n: int = 40) -> str:
    return " ".join(rng.choice(words) for _ in range(n))


def test_near_duplicates_found_and_distinct_kept() -> None:
    rng = random.Random(0)
    words = [f"w{i}" for i in range(2000)]
    docs = [_doc(rng, words) for _ in range(300)]
    near = docs[5].split()
    near[20] = "changed"
    docs.append(" ".join(near))  # one word of 40 changed: Jaccard of 3-grams ~0.85
    result = list(near_duplicates(docs, threshold=0.8, workers=1))
    assert result[-1] == 5
    assert sum(r is not None for r in result) == 1


def _records() -> list[dict]:
    base = (
        "Fine-tuning adapts a pretrained model to a new task using a small, carefully cleaned dataset. "
        "Most of the work is in the data: collecting examples, removing duplicates, masking personal "
        "information and checking that every record has the format the trainer expects."
    )
    return [
        {"text": base},
        {"text": base.upper() + "  "},  # exact duplicate after normalization
        {"text": base.replace("small", "tiny")},  # near duplicate
        {"text": "Contact me at alice@example.com about the dataset release schedule next week."},
        {"text": "too short"},
        {"text": "spam spam spam spam spam spam spam spam spam spam spam spam"},
        {
            "messages": [
                {"role": "user", "content": "什么是微调？请简单地解释一下这个概念。"},
                {
                    "role": "assistant",
                    "content": "微调是在小数据集上继续训练预训练模型，使其适应新任务的方法。",
                },
            ]
        },
        {
            "text": "Les modèles de langue apprennent des régularités statistiques à partir de grands corpus de texte."
        },
    ]


def test_clean_rules_and_removed_audit(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [*_records(), "{broken"])
    report = clean(src, tmp_path / "out.jsonl", CleanConfig(workers=1), tmp_path / "removed.jsonl")
    out = read_jsonl(tmp_path / "out.jsonl")
    assert report.records_in == 8 and report.records_out == len(out) == 4 and report.malformed == 1
    assert out[1]["text"].startswith("Contact me at <EMAIL>")
    assert out[2]["messages"][0]["content"].startswith("什么是微调")
    removed = {r["removed_by"]: r for r in read_jsonl(tmp_path / "removed.jsonl")}
    assert set(removed) == {"length", "repetition", "exact-dup", "near-dup"}
    assert removed["length"]["record"] == {"text": "too short"}
    counts = {k: (v.removed, v.changed) for k, v in report.rules.items()}
    assert counts["pii"] == (0, 1) and counts["near-dup"] == (1, 0)


def test_clean_language_filter(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", _records())
    clean(src, tmp_path / "out.jsonl", CleanConfig(languages=("en", "zh"), near_dedupe=False))
    texts = [r.get("text", "") for r in read_jsonl(tmp_path / "out.jsonl")]
    assert not any("modèles" in t for t in texts) and len(texts) == 4


def test_cli_clean_table_and_errors(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", _records())
    r = run_cli(
        "clean", src, "-o", tmp_path / "out.jsonl", "--removed", tmp_path / "rm.jsonl", "--workers", "1"
    )
    assert r.exit_code == 0, r.output
    for rule in ("pii", "length", "repetition", "exact-dup", "near-dup"):
        assert rule in r.output
    assert "8 records in, 4 out" in r.output
    r = run_cli("clean", src, "-o", tmp_path / "out2.jsonl", "--min-chars", "100000")
    assert r.exit_code == 2 and "all 8 records were removed" in r.error
    assert not (tmp_path / "out2.jsonl").exists()
    with pytest.raises(UserError, match="near_threshold=0"):
        CleanConfig.build({"near_threshold": 0})


def test_band_table_keeps_first_id_through_growth() -> None:
    import numpy as np

    from llmworks.data.near_dedupe import BandTable

    rng = np.random.default_rng(0)
    keys = rng.integers(1, 2**63, size=(5000, 18), dtype=np.uint64)
    keys[:, 0] &= np.uint64(0xFF)  # many collisions in the home slot: long probe runs
    keys[:, 0] |= np.uint64(1)
    table = BandTable(capacity=64)  # grows many times
    firsts: dict[int, int] = {}
    for doc, row in enumerate(keys):
        got = table.get_or_put(row.tolist(), doc)
        want = [firsts.get(int(k), -1) for k in row]
        assert got == want
        for k in row.tolist():
            firsts.setdefault(k, doc)
    assert table.size == len(firsts)
