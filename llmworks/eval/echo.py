"""Log-likelihoods from an OpenAI-compatible server: /v1/completions with echo + logprobs, max_tokens 1.

The continuation is located by the echoed tokens' text offsets alone, so a reply is read right whether or not
it carries the one generated token. `llmworks serve` leaves that token out when it is EOS, and
`HTTPClient.loglikelihood` (like lm-eval's local-completions) drops the last echoed token on the assumption
that it was generated: for such a pair the continuation's last token went missing and scores moved by whole
nats. This scorer is eval's workaround until the client reads offsets this way (then it goes).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llmworks.client import Pair, RequestFailed

BATCH = 16
"""Prompts per request."""


class EchoScorer:
    def __init__(
        self, base_url: str, api_key: str | None, model: str, retries: int, concurrency: int
    ) -> None:
        import openai

        self.base_url, self.model, self.concurrency = base_url.rstrip("/"), model, concurrency
        self._openai = openai
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=api_key or "unused", max_retries=retries, timeout=600
        )
        self._can_score: bool | None = None

    def __call__(self, pairs: Sequence[Pair]) -> list[float] | None:
        """Summed log P(continuation | context) per pair, or None when the server cannot score text."""
        if self._can_score is False:
            return None
        chunks = [list(pairs[i : i + BATCH]) for i in range(0, len(pairs), BATCH)]
        with ThreadPoolExecutor(max_workers=max(1, min(self.concurrency, len(chunks)))) as pool:
            parts = list(pool.map(self._score, chunks))
        if any(p is None for p in parts):
            self._can_score = False
            return None
        self._can_score = True
        return [v for p in parts for v in p]  # type: ignore[union-attr]

    def close(self) -> None:
        self._client.close()

    def _score(self, chunk: list[Pair]) -> list[float] | None:
        try:
            r = self._client.completions.create(
                model=self.model,
                prompt=[c + x for c, x in chunk],
                max_tokens=1,
                temperature=0.0,
                echo=True,
                logprobs=0,
            )
        except self._openai.APIConnectionError as e:
            raise RequestFailed(f"cannot reach {self.base_url} ({e.__cause__ or e})") from None
        except self._openai.APIStatusError as e:
            fatal = e.status_code >= 500 or e.status_code in (401, 403, 408, 429)
            if not fatal and self._can_score is None:  # the server rejects echo scoring
                return None
            raise RequestFailed(
                f"{self.base_url} answered HTTP {e.status_code}: {e.message}", fatal
            ) from None
        out = []
        for (context, continuation), choice in zip(
            chunk, sorted(r.choices, key=lambda c: c.index), strict=True
        ):
            score = _continuation_logprob(choice, context, continuation)
            if score is None:
                return None
            out.append(score)
        return out


def _continuation_logprob(choice: Any, context: str, continuation: str) -> float | None:
    """The sum over the echoed tokens that start inside the continuation. The echo may open with a BOS text
    the request did not have, and may end with a generated token: offsets are taken from where the request's
    text starts in the echoed text."""
    lp = choice.logprobs
    if lp is None or not lp.text_offset or lp.token_logprobs is None:
        return None
    whole = context + continuation
    start = (choice.text or "").find(whole)
    if start < 0:  # the echo is not the request's text verbatim: assume a generated token ends it
        start = lp.text_offset[-1] - len(whole)
    begin, end = start + len(context), start + len(whole)
    return sum(
        v or 0.0 for off, v in zip(lp.text_offset, lp.token_logprobs, strict=True) if begin <= off < end
    )
