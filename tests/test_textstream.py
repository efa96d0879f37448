"""Incremental detokenization and stop strings, on a byte-piece tokenizer (like GPT-2 BPE)."""

from collections.abc import Sequence

from llmworks.engines.textstream import TextStream

PIECES = {
    0: b"Hel",
    1: b"lo",
    2: b" wor",
    3: b"ld",
    4: b"\xe4\xbd",
    5: b"\xa0",
    6: b"<|",
    7: b"end|>",
    8: b"!",
}


def decode(ids: Sequence[int]) -> str:
    return b"".join(PIECES[i] for i in ids).decode("utf-8", errors="replace")


def run(ids: list[int], stop: tuple[str, ...] = ()) -> tuple[list[str], TextStream]:
    stream = TextStream(decode, stop)
    out = []
    for i in ids:
        out.append(stream.push(i))
        if stream.stopped:
            break
    out.append(stream.flush())
    return out, stream


def test_plain_text_streams_token_by_token() -> None:
    out, _ = run([0, 1, 2, 3])
    assert out == ["Hel", "lo", " wor", "ld", ""]


def test_multibyte_character_is_released_whole() -> None:
    out, _ = run([0, 4, 5, 8])  # 你 is split over two tokens
    assert out == ["Hel", "", "你", "!", ""]
    assert "\ufffd" not in "".join(out)


def test_stop_string_split_over_tokens_is_held_back_and_cut() -> None:
    out, stream = run([0, 1, 6, 7, 8], stop=("<|end|>",))
    assert stream.stopped
    assert "".join(out) == "Hello"
    assert out[2] == ""  # "<|" could start the stop string: held back


def test_held_back_text_is_released_when_it_is_not_a_stop() -> None:
    out, stream = run([0, 6, 8], stop=("<|end|>",))
    assert not stream.stopped
    assert "".join(out) == "Hel<|!"


def test_earliest_of_several_stops_wins() -> None:
    out, _ = run([0, 1, 2, 3], stop=("ld", "lo"))
    assert "".join(out) == "Hel"


def test_flush_returns_the_remainder_at_length_limit() -> None:
    stream = TextStream(decode, ("<|end|>",))
    assert stream.push(6) == ""
    assert stream.flush() == "<|"
