from pathlib import Path

import pytest
from data_testing import read_jsonl, run_cli, write_jsonl

from llmworks.data import formats

ALPACA = {
    "instruction": "Add",
    "input": "2+2",
    "output": "4",
    "system": "Be brief.",
    "history": [["hi", "hello"]],
}
SHAREGPT = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}
MESSAGES = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
PREFERENCE = {"prompt": "hi", "chosen": "hello!", "rejected": "go away"}


def test_detect_and_parse_each_format() -> None:
    assert [formats.detect(r) for r in (ALPACA, SHAREGPT, MESSAGES, PREFERENCE)] == list(
        ("alpaca", "sharegpt", "messages", "preference")
    )
    ex = formats.parse(ALPACA)
    assert [m["role"] for m in ex.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert ex.messages[3]["content"] == "Add\n\n2+2"
    assert formats.parse(PREFERENCE).rejected == "go away"


@pytest.mark.parametrize("to", formats.FORMATS[:3])
def test_round_trip_keeps_the_conversation(to: formats.Format) -> None:
    ex = formats.parse(ALPACA)
    again = formats.parse(formats.render(ex, to))
    assert again.messages == ex.messages


def test_preference_round_trip_and_sft_cannot_become_preference() -> None:
    ex = formats.parse(PREFERENCE)
    out = formats.render(ex, "preference")
    assert out["chosen"] == [{"role": "assistant", "content": "hello!"}]
    assert formats.parse(out).rejected == "go away"
    with pytest.raises(formats.BadRecord, match="no rejected"):
        formats.render(formats.parse(MESSAGES), "preference")


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"messages": []}, "non-empty list"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "role is 'bot'"),
        ({"messages": [{"role": "user", "content": "x"}]}, "last turn must be the assistant"),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "user", "content": "y"},
                    {"role": "assistant", "content": "z"},
                ]
            },
            "two user turns",
        ),
        ({"conversations": [{"from": "alien", "value": "x"}]}, "expected human, gpt"),
        ({"instruction": "x", "output": 3}, "output must be a string"),
        ({"prompt": "p", "chosen": "same", "rejected": "same"}, "the same reply"),
        ({"foo": 1}, "unknown record format"),
    ],
)
def test_malformed_records_give_reasons(record: dict, reason: str) -> None:
    with pytest.raises(formats.BadRecord, match=reason):
        formats.parse(record)


def _mixed_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "in.jsonl", [ALPACA, SHAREGPT, "{broken", {"foo": 1}, MESSAGES, PREFERENCE])


def test_cli_convert_skips_and_counts(tmp_path: Path) -> None:
    src = _mixed_file(tmp_path)
    r = run_cli("convert", src, "-o", tmp_path / "out.jsonl", "--to", "sharegpt")
    assert r.exit_code == 0, r.output
    assert f"{src}:3: invalid JSON" in r.output and f"{src}:4: unknown record format" in r.output
    assert "wrote 4 sharegpt records" in r.output and "skipped 2 malformed" in r.output
    out = read_jsonl(tmp_path / "out.jsonl")
    assert out[0]["system"] == "Be brief." and out[0]["conversations"][0] == {"from": "human", "value": "hi"}


def test_cli_convert_strict_stops_and_writes_nothing(tmp_path: Path) -> None:
    r = run_cli("convert", _mixed_file(tmp_path), "-o", tmp_path / "out.jsonl", "--strict")
    assert r.exit_code == 2 and "in.jsonl:3: invalid JSON" in r.error
    assert not (tmp_path / "out.jsonl").exists()


def test_cli_convert_to_preference_counts_sft_as_malformed(tmp_path: Path) -> None:
    r = run_cli("convert", _mixed_file(tmp_path), "-o", tmp_path / "out.jsonl", "--to", "preference")
    assert r.exit_code == 0 and "wrote 1 preference records" in r.output


def test_cli_convert_bad_input(tmp_path: Path) -> None:
    r = run_cli("convert", tmp_path / "missing.jsonl", "-o", tmp_path / "o.jsonl")
    assert r.exit_code == 2 and "no such file" in r.error
    src = write_jsonl(tmp_path / "bad.jsonl", ["{nope", '"just a string"'])
    r = run_cli("convert", src, "-o", tmp_path / "o.jsonl")
    assert r.exit_code == 2 and "nothing was written" in r.error and "bad.jsonl:1" in r.error
    assert not (tmp_path / "o.jsonl").exists()
    r = run_cli("convert", src, "-o", tmp_path / "o.jsonl", "--to", "xml")
    assert r.exit_code == 2 and "to='xml'" in r.error


def test_cli_convert_reads_a_saved_dataset(tmp_path: Path) -> None:
    import datasets

    datasets.Dataset.from_list([ALPACA | {"history": []}, ALPACA | {"history": []}]).save_to_disk(
        str(tmp_path / "ds")
    )
    r = run_cli("convert", tmp_path / "ds", "-o", tmp_path / "out.jsonl")
    assert r.exit_code == 0, r.output
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 2


TOOL_CHAT = {
    "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 18}'},
        {"role": "assistant", "content": "18 °C."},
    ],
}


def test_tool_calls_and_tools_survive_parsing_and_conversion() -> None:
    ex = formats.parse(TOOL_CHAT)
    call = ex.messages[1]["tool_calls"][0]
    assert call == {
        "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
        "id": "call_1",
    }
    assert ex.messages[2]["tool_call_id"] == "call_1" and ex.tools == TOOL_CHAT["tools"]
    sharegpt = formats.render(ex, "sharegpt")
    assert [t["from"] for t in sharegpt["conversations"]] == ["human", "function_call", "observation", "gpt"]
    back = formats.parse(sharegpt)
    assert back.messages[1]["tool_calls"][0]["function"] == call["function"] and back.tools == ex.tools
    with pytest.raises(formats.BadRecord, match="alpaca cannot hold"):
        formats.render(ex, "alpaca")
    bad = {"messages": [*TOOL_CHAT["messages"][:1], {"role": "assistant", "tool_calls": [{"function": {}}]}]}
    with pytest.raises(formats.BadRecord, match="function name"):
        formats.parse(bad)
