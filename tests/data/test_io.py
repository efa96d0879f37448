from pathlib import Path

import pytest
from data_testing import write_jsonl

from llmworks.atomic import atomic_open
from llmworks.data import io
from llmworks.errors import UserError


def test_atomic_open_leaves_nothing_on_error(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_open(target) as f:
        f.write("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_empty_output_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nothing was written"):
        io.write_jsonl(tmp_path / "out.jsonl", [])
    assert list(tmp_path.iterdir()) == []


def test_jsonl_bad_lines_are_rows_with_reasons(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_bytes(b'{"a": 1}\n\n{oops\n[1, 2]\n\xff\xfe{"b": 2}\n{"c": 3}\n')
    rows = list(io.read_records(p))
    assert [r.record for r in rows if r.record] == [{"a": 1}, {"c": 3}]
    errors = [(r.where.rsplit(":", 1)[1], r.error) for r in rows if r.error]
    assert [e[0] for e in errors] == ["3", "4", "5"]
    assert "invalid JSON" in errors[0][1] and "JSON object" in errors[1][1] and "UTF-8" in errors[2][1]
    assert sum(r.nbytes for r in rows) == p.stat().st_size - 1  # all but the blank line


def test_json_csv_parquet_and_saved_dataset(tmp_path: Path) -> None:
    import datasets
    import pandas as pd

    recs = [{"instruction": "hi", "output": "hello"}, {"instruction": "bye", "output": "goodbye"}]
    (tmp_path / "a.json").write_text(__import__("json").dumps(recs))
    pd.DataFrame(recs).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame(recs).to_parquet(tmp_path / "a.parquet")
    datasets.Dataset.from_list(recs).save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"train": datasets.Dataset.from_list(recs)}).save_to_disk(
        str(tmp_path / "saved_dict")
    )
    for name in ("a.json", "a.csv", "a.parquet", "saved", "saved_dict"):
        assert [r.record for r in io.read_records(tmp_path / name)] == recs, name


def test_json_lines_saved_as_json_still_read(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "x.json", [{"a": 1}, {"a": 2}])
    assert [r.record for r in io.read_records(p)] == [{"a": 1}, {"a": 2}]


def test_missing_and_unsupported(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        list(io.read_records(tmp_path / "nope.jsonl"))
    (tmp_path / "x.xml").write_text("<a/>")
    with pytest.raises(UserError, match="unsupported"):
        list(io.read_records(tmp_path / "x.xml"))
