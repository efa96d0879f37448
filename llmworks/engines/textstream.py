"""Token ids in, safe text out: incremental detokenization and stop strings, shared by every engine.

Decoding re-reads a few tokens before the new ones (the prefix/read offsets of vLLM's and TGI's
incremental detokenizers), so tokenizers that drop a leading space on the first token, and tokens that
end inside a multi-byte character, come out right. Text is released only once it can no longer be part
of a stop string, so a stream never shows text the final result would not contain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from llmworks.engines.types import Delta

_INCOMPLETE = "\ufffd"  # what a decoder yields for a cut-off multi-byte character


class TextStream:
    def __init__(self, decode: Callable[[Sequence[int]], str], stop: Sequence[str] = ()) -> None:
        self._decode = decode
        self._stop = [s for s in stop if s]
        self._longest = max((len(s) for s in self._stop), default=0)
        self._ids: list[int] = []
        self._prefix = 0  # ids[prefix:read] were decoded last time, as context for the next piece
        self._read = 0
        self._text = ""  # all text decoded so far
        self._sent = 0  # characters of _text already released
        self.stopped = False

    @property
    def text(self) -> str:
        """Everything released so far."""
        return self._text[: self._sent]

    def push(self, token_id: int) -> str:
        """Add one token; return the text that is now safe to show (may be "")."""
        self._ids.append(token_id)
        before = self._decode(self._ids[self._prefix : self._read])
        now = self._decode(self._ids[self._prefix :])
        if len(now) <= len(before) or now.endswith(_INCOMPLETE):
            return ""  # nothing new yet, or a character is still being completed
        self._text += now[len(before) :]
        self._prefix, self._read = self._read, len(self._ids)
        return self._release()

    def flush(self) -> str:
        """The held-back remainder when generation ends without a stop string."""
        if self.stopped:
            return ""
        tail = self._decode(self._ids[self._prefix :])
        before = self._decode(self._ids[self._prefix : self._read])
        if len(tail) > len(before):
            self._text += tail[len(before) :]
        out, self._sent = self._text[self._sent :], len(self._text)
        return out

    def _release(self) -> str:
        start = max(0, self._sent - self._longest)
        hits = [at for s in self._stop if (at := self._text.find(s, start)) != -1]
        if hits:
            at = min(hits)
            self.stopped = True
            out = self._text[self._sent : at]
            self._text, self._sent = self._text[:at], at
            return out
        hold = max((_overlap(self._text, s) for s in self._stop), default=0)
        safe = len(self._text) - hold
        out = self._text[self._sent : safe] if safe > self._sent else ""
        self._sent = max(self._sent, safe)
        return out


def _overlap(text: str, stop: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `stop`."""
    for n in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:n]):
            return n
    return 0


class OutputProcessor:
    """Sampled token ids in, `Delta`s out: ends a sequence on an EOS id, a stop string or max_tokens.

    Every generation path (each engine's `generate`, the server's batch scheduler) feeds tokens through
    one of these, so they all stop the same way.
    """

    def __init__(
        self, decode: Callable[[Sequence[int]], str], eos_ids: set[int], stop: Sequence[str], max_new: int
    ):
        self._stream = TextStream(decode, stop)
        self._eos = eos_ids
        self._max_new = max_new
        self.n_generated = 0
        self.finish_reason: str | None = None

    @property
    def text(self) -> str:
        return self._stream.text

    def feed(self, token_id: int) -> Delta:
        if token_id in self._eos:
            self.finish_reason = "stop"
            return Delta(self._stream.flush(), [], "stop")
        self.n_generated += 1
        text = self._stream.push(token_id)
        if self._stream.stopped:
            self.finish_reason = "stop"
        elif self.n_generated >= self._max_new:
            self.finish_reason = "length"
            text += self._stream.flush()
        return Delta(text, [token_id], self.finish_reason)  # type: ignore[arg-type]
