import json
from pathlib import Path

import pytest
from data_testing import run_cli, write_jsonl

from llmworks.data.stats import compare_tokenizers, data_stats
from llmworks.data.tokenizers import load_tokenizer


def test_data_stats(tmp_path: Path, tiny_tokenizer: Path) -> None:
    recs = [
        {
            "messages": [
                {"role": "user", "content": "the quick brown fox " * k},
                {"role": "assistant", "content": "ok"},
            ]
        }
        for k in range(1, 11)
    ]
    src = write_jsonl(tmp_path / "d.jsonl", [*recs, {"text": "the lazy dog"}, "{bad"])
    tok = load_tokenizer(str(tiny_tokenizer))
    st = data_stats(src, tok, max_length=20, plot=tmp_path / "h.png")
    assert st.records == 11 and st.malformed == 1
    assert st.formats == {"messages": 10, "text": 1}
    assert st.tokens_max == len(tok.encode("the quick brown fox " * 10 + "\nok"))
    assert 0 < st.over_max_length < 1
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"


def test_tool_records_count_their_tools_and_calls(tmp_path: Path, tiny_tokenizer: Path) -> None:
    tools = [{"type": "function", "function": {"name": "speak", "parameters": {"type": "object"}}}]
    call = [{"type": "function", "function": {"name": "speak", "arguments": '{"text": "hi"}'}}]
    msgs = [{"role": "user", "content": "say hi"}, {"role": "assistant", "content": None, "tool_calls": call}]
    src = write_jsonl(tmp_path / "d.jsonl", [{"messages": msgs, "tools": tools}, {"messages": msgs}])
    tok = load_tokenizer(str(tiny_tokenizer))
    st = data_stats(src, tok)
    # the offered schemas and the call are counted with the turns
    assert st.tokens_max == len(tok.encode("say hi\n" + json.dumps(tools) + "\n" + json.dumps(call)))
    assert st.tokens_total - st.tokens_max == len(tok.encode("say hi\n" + json.dumps(call)))


def test_hf_directory_tokenizer(tmp_path: Path, tiny_tokenizer: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    PreTrainedTokenizerFast(tokenizer_file=str(tiny_tokenizer)).save_pretrained(tmp_path / "hf")
    tok = load_tokenizer(str(tmp_path / "hf"))
    assert tok.encode("the quick brown fox") == load_tokenizer(str(tiny_tokenizer)).encode(
        "the quick brown fox"
    )


def test_compare_tokenizers(tmp_path: Path, tiny_tokenizer: Path) -> None:
    en = tmp_path / "en.txt"
    zh = tmp_path / "zh.txt"
    en.write_text("the quick brown fox jumps over the lazy dog\n" * 50)
    zh.write_text("数据 训练 模型\n" * 50)
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    byte_level = Tokenizer(models.BPE())  # the byte alphabet and no merges: one token per byte
    byte_level.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    byte_level.train_from_iterator(
        ["x"], trainers.BpeTrainer(vocab_size=len(alphabet), initial_alphabet=alphabet)
    )
    byte_level.save(str(tmp_path / "bytes.json"))
    rows = compare_tokenizers(
        [load_tokenizer(str(tiny_tokenizer)), load_tokenizer(str(tmp_path / "bytes.json"))],
        [en, zh],
        chunk_chars=100,
    )
    trained, raw = rows
    assert raw.per_file["en.txt"]["bytes_per_token"] == 1.0
    assert trained.per_file["en.txt"]["chars_per_token"] > 3  # merges learned on this very text
    assert trained.per_file["zh.txt"]["bytes_per_token"] > trained.per_file["zh.txt"]["chars_per_token"]


def test_cli_stats(tmp_path: Path, tiny_tokenizer: Path) -> None:
    src = write_jsonl(tmp_path / "d.jsonl", [{"text": "the quick brown fox"}] * 3)
    r = run_cli("stats", src, "--tokenizer", tiny_tokenizer, "--max-length", "2")
    assert r.exit_code == 0, r.output
    assert "tokens p90" in r.output and "share over 2" in r.output
    assert (tmp_path / "d.jsonl.lengths.png").exists()
    txt = tmp_path / "t.txt"
    txt.write_text("the lazy dog\n")
    r = run_cli("stats", txt, "--compare-tokenizers", f"{tiny_tokenizer},{tiny_tokenizer}")
    assert r.exit_code == 0 and "chars/tok" in r.output
    r = run_cli("stats", src)
    assert r.exit_code == 2 and "--tokenizer" in r.error


@pytest.mark.slow
def test_compare_with_the_embedded_model(tmp_path: Path, tiny_tokenizer: Path) -> None:
    en, zh = tmp_path / "en.txt", tmp_path / "zh.txt"
    en.write_text("Fine-tuning adapts a pretrained language model to a new task.\n" * 20)
    zh.write_text("微调是在小数据集上继续训练预训练模型的方法。\n" * 20)
    r = run_cli("stats", en, zh, "--compare-tokenizers", f"smollm2-135m-instruct,{tiny_tokenizer}", "--json")
    assert r.exit_code == 0, r.output
    rows = {row["tokenizer"]: row for row in json.loads(r.output)}
    smol = next(v for k, v in rows.items() if k != "tiny")
    assert smol["vocab_size"] == 49152
    assert smol["per_file"]["en.txt"]["chars_per_token"] > smol["per_file"]["zh.txt"]["chars_per_token"]
