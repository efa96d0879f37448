"""Benchmark any OpenAI-compatible server the way `vllm bench serve` does, at several concurrency levels.

    from llmworks.servebench.serve_client import ServeBenchConfig, run_benchmark
    results = run_benchmark(ServeBenchConfig(base_url="http://127.0.0.1:8000", concurrency=[1, 8]))

Each level sends `num_prompts` streaming /v1/completions requests (a synthetic prompt of ~`input_len`
tokens from random words, `max_tokens=output_len`, temperature 0) and keeps `concurrency` of them in
flight. Output tokens are counted from the server's usage when it sends one, else one per text chunk;
nothing relies on `ignore_eos`, so short outputs are counted as they are and reported as a warning.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from llmworks.errors import UserError
from llmworks.servebench.metrics import LevelResult, RequestResult, summarize

__all__ = ["ServeBenchConfig", "parse_concurrency", "run_benchmark", "synthetic_prompts", "write_results"]

# Short common words: each is one token (with its leading space) in the usual BPE vocabularies,
# so n words make a prompt of about n tokens without needing the server's tokenizer.
_WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an "
    "they you were her she there one all we their been has when who will more no if out so said what up its "
    "about into than them can only other new some could time these two may then do first any my now such "
    "like our over man me even most made after also did many before must through back years where much your "
    "way well down should because each just those people how too little state good very make world still own "
    "see men work long get here between both life being under never day same another know while last might "
    "us great old year off come since against go came right used take three"
)
WORDS = _WORDS.split()


@dataclass
class ServeBenchConfig:
    """One benchmark run; the CLI flags of `llmworks bench serve` fill the same fields."""

    base_url: str = "http://127.0.0.1:8000"
    """Server root, with or without the trailing /v1."""
    model: str | None = None
    """Model name sent in requests; None takes the first one GET /v1/models lists."""
    api_key: str | None = None
    """Sent as `Authorization: Bearer <key>`."""
    concurrency: list[int] = field(default_factory=lambda: [1, 4, 16])
    """Requests kept in flight, one level per value."""
    num_prompts: int = 32
    """Requests per level."""
    input_len: int = 128
    """Prompt length in tokens (approximate: random common words)."""
    output_len: int = 128
    """max_tokens of every request."""
    seed: int = 0
    """Seed of the synthetic prompts."""
    timeout_s: float = 600.0
    """Per-request limit on the whole stream."""

    def __post_init__(self) -> None:
        problems = []
        if not self.concurrency or any(c < 1 for c in self.concurrency):
            problems.append(f"concurrency must be positive integers, got {self.concurrency}")
        for name in ("num_prompts", "input_len", "output_len"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.base_url.startswith(("http://", "https://")):
            problems.append(f"base_url must start with http:// or https://, got {self.base_url!r}")
        if problems:
            raise UserError("bad benchmark settings: " + "; ".join(problems) + ".", "Fix the values above.")
        self.base_url = self.base_url.rstrip("/").removesuffix("/v1")


def parse_concurrency(text: str) -> list[int]:
    """'1,4,16' -> [1, 4, 16]; anything else is a UserError naming the bad part."""
    try:
        levels = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        levels = []
    if not levels or any(c < 1 for c in levels):
        raise UserError(
            f"bad concurrency list {text!r}.",
            "Give positive integers separated by commas, e.g. --concurrency 1,4,16",
        )
    return levels


def synthetic_prompts(n: int, input_len: int, seed: int) -> list[str]:
    """n different prompts of `input_len` random words; different prompts keep prefix caches out of it."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=input_len)) for _ in range(n)]


def run_benchmark(
    config: ServeBenchConfig, on_progress: Callable[[int, int], None] | None = None
) -> list[LevelResult]:
    """Warm up once, then run each concurrency level in turn; `on_progress(level, done)` after each request."""
    return asyncio.run(_run(config, on_progress))


def write_results(path: Path, config: ServeBenchConfig, results: list[LevelResult]) -> None:
    """{"config": ..., "results": [one object per level]} written atomically (temp file, then rename)."""
    payload = {"config": {**asdict(config), "api_key": "***" if config.api_key else None}}
    payload["results"] = [r.to_dict() for r in results]
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
        json.dump(payload, f, indent=2)
    os.replace(f.name, path)


async def _run(config: ServeBenchConfig, on_progress: Callable[[int, int], None] | None) -> list[LevelResult]:
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    limits = httpx.Limits(max_connections=max(config.concurrency) + 1, max_keepalive_connections=None)
    timeout = httpx.Timeout(config.timeout_s, connect=10.0)
    async with httpx.AsyncClient(
        base_url=config.base_url, headers=headers, limits=limits, timeout=timeout
    ) as client:
        models = await _list_models(client, config.base_url, required=config.model is None)
        model = config.model or models[0]
        warm = await _request(client, model, "Hello", min(config.output_len, 8))
        if not warm.ok:
            raise UserError(
                f"the warm-up request to {config.base_url}/v1/completions failed: {warm.error}",
                "Check --model and --api-key, and that the server serves /v1/completions.",
            )
        results = []
        for i, level in enumerate(config.concurrency):
            prompts = synthetic_prompts(config.num_prompts, config.input_len, config.seed + i)
            done = 0

            def progress(_: RequestResult, i: int = i) -> None:
                nonlocal done
                done += 1
                if on_progress:
                    on_progress(i, done)

            start = time.perf_counter()
            runs = await _run_level(client, model, prompts, config.output_len, level, progress)
            results.append(
                summarize(
                    runs,
                    concurrency=level,
                    duration_s=time.perf_counter() - start,
                    input_len=config.input_len,
                    output_len=config.output_len,
                )
            )
        return results


async def _list_models(client: httpx.AsyncClient, base_url: str, required: bool) -> list[str]:
    """GET /v1/models: fails clearly when the server is unreachable, or when we need a model name and get none."""
    try:
        resp = await client.get("/v1/models")
    except httpx.TransportError as e:
        raise UserError(
            f"cannot reach the server at {base_url} ({type(e).__name__}: {e}).",
            "Start it, or fix --base-url (e.g. http://127.0.0.1:8000).",
        ) from None
    try:
        models = [str(m["id"]) for m in resp.json()["data"]] if resp.status_code == 200 else []
    except (ValueError, KeyError, TypeError):
        raise UserError(
            f"{base_url}/v1/models did not answer with an OpenAI model list.",
            "Point --base-url at an OpenAI-compatible server.",
        ) from None
    if required and resp.status_code != 200:
        raise UserError(
            f"GET {base_url}/v1/models answered HTTP {resp.status_code}: {_error_message(resp.text)}",
            "Check --api-key, or pass --model.",
        )
    if required and not models:
        raise UserError(f"{base_url}/v1/models lists no models.", "Pass --model.")
    return models


async def _run_level(
    client: httpx.AsyncClient,
    model: str,
    prompts: list[str],
    output_len: int,
    concurrency: int,
    progress: Callable[[RequestResult], None],
) -> list[RequestResult]:
    """Keep `concurrency` requests in flight until every prompt is done (as vLLM's max-concurrency)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> RequestResult:
        async with gate:
            result = await _request(client, model, prompt, output_len)
        progress(result)
        return result

    return list(await asyncio.gather(*(one(p) for p in prompts)))


async def _request(client: httpx.AsyncClient, model: str, prompt: str, max_tokens: int) -> RequestResult:
    """One streamed completion, timed per chunk. Never raises: failures come back as ok=False."""
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    r = RequestResult()
    chunks = 0
    start = last = time.perf_counter()
    try:
        async with client.stream("POST", "/v1/completions", json=body) as resp:
            if resp.status_code != 200:
                r.error = f"HTTP {resp.status_code}: {_error_message((await resp.aread()).decode(errors='replace'))}"
                return r
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, ": ping" comments, event: lines
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                event = json.loads(data)
                if "error" in event:
                    r.error = f"error event in stream: {_error_message(data)}"
                    return r
                if usage := event.get("usage"):
                    r.output_tokens = int(usage.get("completion_tokens") or 0)
                    r.prompt_tokens = usage.get("prompt_tokens")
                choices = event.get("choices") or []
                if choices and choices[0].get("text"):
                    now = time.perf_counter()
                    if chunks == 0:
                        r.ttft = now - start
                    else:
                        r.itl.append(now - last)
                    last = now
                    chunks += 1
        r.latency = time.perf_counter() - start
    except (httpx.HTTPError, json.JSONDecodeError) as e:
        r.error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        return r
    if chunks == 0:
        r.error = "the stream ended before the first token"
        return r
    r.output_tokens = r.output_tokens or chunks
    r.ok = True
    return r


def _error_message(text: str) -> str:
    """The message of an OpenAI error object, else the raw text (cut short)."""
    try:
        body: Any = json.loads(text)
        message = body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else None
        return str(message or body.get("detail") or body)[:300]
    except (ValueError, AttributeError):
        return text.strip()[:300]
