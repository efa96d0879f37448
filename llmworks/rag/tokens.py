"""Token counts in the embedder's own tokens: chunk sizes are set in them, and the dense weight of a query
drops with the share of its tokens the embedder does not know (all-MiniLM-L6-v2 reads Chinese as [UNK])."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

__all__ = ["TokenCounter", "token_counter"]


class TokenCounter:
    """Counts and cuts text in a Hugging Face fast tokenizer's tokens (tokenizer.json), without special
    tokens, padding or truncation. Without a tokenizer: about 4 characters a token."""

    def __init__(self, tokenizer_json: Path | None) -> None:
        self.path = tokenizer_json
        self._tok = None
        self._unk: int | None = None
        if tokenizer_json is not None and tokenizer_json.is_file():
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(tokenizer_json))
            tok.no_padding()
            tok.no_truncation()
            self._tok = tok
            unk = tok.model.unk_token if hasattr(tok.model, "unk_token") else None
            self._unk = tok.token_to_id(unk) if unk else None

    @property
    def exact(self) -> bool:
        return self._tok is not None

    def count(self, text: str) -> int:
        return self.counts([text])[0]

    def counts(self, texts: Sequence[str]) -> list[int]:
        if self._tok is None:
            return [max(1, len(t) // 4) if t else 0 for t in texts]
        return [len(e.ids) for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def cut(self, text: str, size: int) -> list[tuple[int, int]]:
        """Character spans of `text`, each at most `size` tokens, cut at token boundaries."""
        if self._tok is None:
            step = max(1, size * 4)
            return [(i, min(len(text), i + step)) for i in range(0, len(text), step)] or [(0, 0)]
        offsets = [o for o in self._tok.encode(text, add_special_tokens=False).offsets if o[1] > o[0]]
        spans, i = [], 0
        while i < len(offsets):
            j = min(len(offsets), i + size)
            start = offsets[i][0] if i else 0
            end = offsets[j][0] if j < len(offsets) else len(text)
            spans.append((start, end))
            i = j
        return spans or [(0, len(text))]

    def unknown_share(self, text: str) -> float:
        """The share of `text`'s tokens the tokenizer maps to its unknown token (0 when it has none)."""
        if self._tok is None or self._unk is None:
            return 0.0
        ids = self._tok.encode(text, add_special_tokens=False).ids
        return sum(i == self._unk for i in ids) / len(ids) if ids else 0.0


@lru_cache(maxsize=8)
def token_counter(model_dir: str | None) -> TokenCounter:
    """The counter for a sentence-transformers directory (its tokenizer.json); None: the default embedder's."""
    from llmworks.engines.embedder import embedding_model_dir
    from llmworks.errors import UserError

    if model_dir is None:
        try:
            model_dir = str(embedding_model_dir(None))
        except UserError:  # no default embedder installed (a remote one is used): approximate counts
            return TokenCounter(None)
    return TokenCounter(Path(model_dir) / "tokenizer.json")
