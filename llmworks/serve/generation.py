"""Chat and text completions: OpenAI request -> scheduler requests -> OpenAI response or SSE stream."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from llmworks.engines.base import Engine
from llmworks.engines.llamacpp_batch import TokenLogprob
from llmworks.serve.metrics import Metrics
from llmworks.serve.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    error_body,
    new_id,
    now,
    usage,
)
from llmworks.serve.scheduler import EngineDead, Event, GenRequest, QueueFull
from llmworks.serve.served import ServedModel
from llmworks.serve.tools import (
    may_become_call,
    parse_tool_calls,
    response_format_grammar,
    template_messages,
    tool_choice_mode,
    tool_grammar,
)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param, self.headers = (
            status,
            message,
            type_,
            code,
            param,
            headers,
        )


@dataclass
class Choice:
    """What one generated sequence accumulated."""

    text: str = ""
    tokens: list[TokenLogprob] = field(default_factory=list)
    prompt_logprobs: list[TokenLogprob | None] | None = None
    finish_reason: str | None = None
    n_generated: int = 0


# -- chat --


async def chat_completion(
    model: ServedModel, body: ChatCompletionRequest, request: Request, metrics: Metrics
) -> Response:
    eng = model.engine
    if eng.template is None:
        raise ApiError(
            400, f"The model '{model.name}' has no chat template.", code="no_chat_template", param="model"
        )
    mode = tool_choice_mode(body.tools, body.tool_choice)
    messages = [{**m.model_dump(exclude_none=True), "content": m.text()} for m in body.messages]
    default_system = eng.default_system()
    if default_system and messages[0]["role"] not in ("system", "developer"):
        messages.insert(0, {"role": "system", "content": default_system})
    messages, native_tools = template_messages(messages, body.tools if mode else None, eng.template)
    prompt_ids = eng.encode_prompt(
        eng.template.render(messages, add_generation_prompt=True, tools=native_tools)
    )
    forced = mode not in (None, "auto")
    grammar = (
        tool_grammar(body.tools or [], mode) if forced else response_format_grammar(body.response_format)
    )
    n_logprobs = (body.top_logprobs or 0) if body.logprobs else None
    max_tokens = _max_tokens(model, len(prompt_ids), body.max_completion_tokens or body.max_tokens)
    eot = eng.template.end_of_turn
    reqs = []
    for i in range(body.n):
        params = body.sampling(max_tokens, i)
        if eot and eot not in params.stop:  # stop at the end of the turn even if EOS settings miss it
            params.stop = (*params.stop, eot)
        reqs.append(GenRequest(prompt_ids, params, grammar, n_logprobs))
    _submit(model, reqs, metrics)
    rid, created = new_id("chatcmpl"), now()
    head = {"id": rid, "created": created, "model": model.name}
    if body.stream:
        return _sse(_chat_stream(eng, reqs, head, mode, body.include_usage, len(prompt_ids), metrics), reqs)
    choices = await _collect_all(request, reqs, metrics)
    out = []
    for i, c in enumerate(choices):
        message: dict[str, Any] = {"role": "assistant", "content": c.text}
        finish = c.finish_reason
        if mode:
            content, calls = parse_tool_calls(c.text, forced)
            message["content"] = content
            if calls:
                message["tool_calls"], finish = calls, "tool_calls"
        logprobs = {"content": [_chat_logprob(eng, t) for t in c.tokens]} if n_logprobs is not None else None
        out.append({"index": i, "message": message, "logprobs": logprobs, "finish_reason": finish})
    return JSONResponse(
        {
            **head,
            "object": "chat.completion",
            "choices": out,
            "usage": usage(len(prompt_ids), sum(c.n_generated for c in choices)),
        }
    )


async def _chat_stream(
    eng: Engine,
    reqs: list[GenRequest],
    head: dict[str, Any],
    mode: str | None,
    include_usage: bool,
    n_prompt: int,
    metrics: Metrics,
) -> AsyncIterator[str]:
    forced = mode not in (None, "auto")

    def chunk(i: int, delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> str:
        body = {
            **head,
            "object": "chat.completion.chunk",
            "choices": [{"index": i, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
        }
        return _data(body)

    for i in range(len(reqs)):
        yield chunk(i, {"role": "assistant", "content": ""})
    held = [""] * len(reqs)  # text that may still turn out to be a tool call
    streaming = [not mode] * len(reqs)
    n_generated = 0
    async for i, ev, c in _merged(reqs, metrics):
        delta = ev.delta
        assert delta is not None
        lp = {"content": [_chat_logprob(eng, ev.logprob)]} if ev.logprob else None
        if streaming[i]:
            if delta.text or lp:
                yield chunk(i, {"content": delta.text}, logprobs=lp)
        else:
            held[i] += delta.text
            if mode == "auto" and not may_become_call(held[i]):
                streaming[i] = True
                yield chunk(i, {"content": held[i]}, logprobs=lp)
                held[i] = ""
        if delta.finish_reason:
            n_generated += c.n_generated
            finish = delta.finish_reason
            if not streaming[i]:
                content, calls = parse_tool_calls(held[i], forced)
                if calls:
                    finish = "tool_calls"
                    for k, call in enumerate(calls):
                        fn = call["function"]
                        yield chunk(
                            i,
                            {
                                "tool_calls": [
                                    {
                                        "index": k,
                                        "id": call["id"],
                                        "type": "function",
                                        "function": {"name": fn["name"], "arguments": ""},
                                    }
                                ]
                            },
                        )
                        yield chunk(
                            i, {"tool_calls": [{"index": k, "function": {"arguments": fn["arguments"]}}]}
                        )
                elif content:
                    yield chunk(i, {"content": content})
            yield chunk(i, {}, finish)
    if include_usage:
        yield _data(
            {**head, "object": "chat.completion.chunk", "choices": [], "usage": usage(n_prompt, n_generated)}
        )
    yield "data: [DONE]\n\n"


def _chat_logprob(eng: Engine, t: TokenLogprob) -> dict[str, Any]:
    def entry(token: int, logprob: float) -> dict[str, Any]:
        s = eng.detokenize([token])
        return {"token": s, "logprob": logprob, "bytes": list(s.encode("utf-8"))}

    return {**entry(t.token, t.logprob), "top_logprobs": [entry(i, lp) for i, lp in t.top]}


# -- completions --


async def completion(
    model: ServedModel, body: CompletionRequest, request: Request, metrics: Metrics
) -> Response:
    eng = model.engine
    prompts = _prompts(body.prompt)
    want_prompt_lp = body.echo and body.logprobs is not None
    reqs, prompt_ids_all = [], []
    for p in prompts:
        ids = eng.encode_prompt(p)
        prompt_ids_all.append(ids)
        max_tokens = _max_tokens(
            model, len(ids), body.max_tokens if body.max_tokens > 0 else 1, explicit=body.max_tokens > 0
        )
        for c in range(body.n):
            reqs.append(GenRequest(ids, body.sampling(max_tokens, c), None, body.logprobs, want_prompt_lp))
    _submit(model, reqs, metrics)
    rid, created = new_id("cmpl"), now()
    head = {"id": rid, "created": created, "model": model.name}
    n_prompt = sum(len(ids) for ids in prompt_ids_all)
    prompt_of = [prompt_ids_all[k // body.n] for k in range(len(reqs))]
    drop = body.max_tokens == 0  # echo-only scoring: the one token generated is not part of the answer
    if body.stream:
        return _sse(_completion_stream(eng, reqs, head, body, prompt_of, n_prompt, drop, metrics), reqs)
    choices = await _collect_all(request, reqs, metrics)
    out = []
    for i, c in enumerate(choices):
        text, tokens = ("", []) if drop else (c.text, c.tokens)
        prompt_text = eng.detokenize(prompt_of[i]) if body.echo else ""
        lp = None
        if body.logprobs is not None:
            lp = _completion_logprobs(
                eng, (c.prompt_logprobs or []) if body.echo else [], prompt_of[i] if body.echo else [], tokens
            )
        out.append(
            {
                "index": i,
                "text": prompt_text + text,
                "logprobs": lp,
                "finish_reason": "length" if drop else c.finish_reason,
            }
        )
    completion_tokens = 0 if drop else sum(c.n_generated for c in choices)
    return JSONResponse(
        {**head, "object": "text_completion", "choices": out, "usage": usage(n_prompt, completion_tokens)}
    )


async def _completion_stream(
    eng: Engine,
    reqs: list[GenRequest],
    head: dict[str, Any],
    body: CompletionRequest,
    prompt_of: list[list[int]],
    n_prompt: int,
    drop: bool,
    metrics: Metrics,
) -> AsyncIterator[str]:
    def chunk(i: int, text: str, finish: str | None = None, lp: Any = None) -> str:
        return _data(
            {
                **head,
                "object": "text_completion",
                "choices": [{"index": i, "text": text, "logprobs": lp, "finish_reason": finish}],
            }
        )

    n_generated = 0
    echoed = [False] * len(reqs)
    async for i, ev, c in _merged(reqs, metrics):
        delta = ev.delta
        assert delta is not None
        if body.echo and not echoed[i]:
            echoed[i] = True
            lp = None
            if body.logprobs is not None:
                lp = _completion_logprobs(eng, ev.prompt_logprobs or [], prompt_of[i], [])
            yield chunk(i, eng.detokenize(prompt_of[i]), lp=lp)
        if not drop and (delta.text or ev.logprob):
            lp = (
                _completion_logprobs(eng, [], [], [ev.logprob])
                if ev.logprob and body.logprobs is not None
                else None
            )
            yield chunk(i, delta.text, lp=lp)
        if delta.finish_reason:
            n_generated += 0 if drop else c.n_generated
            yield chunk(i, "", "length" if drop else delta.finish_reason)
    if body.include_usage:
        yield _data(
            {**head, "object": "text_completion", "choices": [], "usage": usage(n_prompt, n_generated)}
        )
    yield "data: [DONE]\n\n"


def _completion_logprobs(
    eng: Engine, prompt_lps: list[TokenLogprob | None], prompt_ids: list[int], generated: list[TokenLogprob]
) -> dict[str, Any]:
    tokens, token_lps, tops, offsets, pos = [], [], [], [], 0
    entries: list[tuple[int, TokenLogprob | None]] = list(zip(prompt_ids, prompt_lps, strict=False))
    entries += [(t.token, t) for t in generated]
    for token, t in entries:
        s = eng.detokenize([token])
        tokens.append(s)
        token_lps.append(t.logprob if t else None)
        tops.append({eng.detokenize([i]): lp for i, lp in t.top} if t and t.top else None)
        offsets.append(pos)
        pos += len(s)
    return {"tokens": tokens, "token_logprobs": token_lps, "top_logprobs": tops, "text_offset": offsets}


def _prompts(prompt: str | list[str] | list[int] | list[list[int]]) -> list[str | list[int]]:
    if isinstance(prompt, str):
        return [prompt]
    if not prompt:
        raise ApiError(400, "prompt is empty.", param="prompt")
    if all(isinstance(p, int) for p in prompt):
        return [list(prompt)]  # type: ignore[arg-type]
    return list(prompt)  # type: ignore[arg-type]


# -- shared plumbing --


def _max_tokens(model: ServedModel, n_prompt: int, requested: int | None, explicit: bool = True) -> int:
    room = model.ctx - n_prompt
    if room <= 0 or (requested is not None and explicit and requested > room):
        asked = f" and {requested} for the completion" if requested is not None and explicit else ""
        raise ApiError(
            400,
            f"This model's maximum context length is {model.ctx} tokens. However, you requested "
            f"{n_prompt + (requested or 0) if explicit else n_prompt} tokens ({n_prompt} in the prompt{asked}). "
            "Please reduce the length of the prompt or the completion.",
            code="context_length_exceeded",
            param="messages",
        )
    return min(requested, room) if requested is not None else room


def _submit(model: ServedModel, reqs: list[GenRequest], metrics: Metrics) -> None:
    needs_runner = any(r.grammar or r.logprobs is not None or r.prompt_logprobs for r in reqs)
    if needs_runner and not model.batched:
        raise ApiError(
            400,
            f"logprobs, response_format and forced tool_choice need the llamacpp engine; "
            f"'{model.name}' runs on {model.engine_kind}.",
            code="unsupported_on_engine",
        )
    try:
        model.scheduler.submit(reqs)
    except QueueFull:
        raise ApiError(
            429,
            f"The server is busy: more than {model.scheduler.max_queue} requests are waiting. Retry shortly.",
            "rate_limit_error",
            "queue_full",
            headers={"Retry-After": "1"},
        ) from None
    except EngineDead as e:
        raise ApiError(
            503,
            f"The engine of '{model.name}' has failed ({e}); restart the server.",
            "server_error",
            "engine_dead",
        ) from None
    metrics.prompt_tokens.inc(sum(len(r.prompt_ids) for r in reqs))


async def _events(req: GenRequest) -> AsyncIterator[Event]:
    while True:
        ev = await req.queue.get()
        if ev.error:
            raise ApiError(503, f"Generation failed: {ev.error}", "server_error", "engine_error")
        yield ev
        if ev.delta is not None and ev.delta.finish_reason:
            return


async def _collect(req: GenRequest, metrics: Metrics) -> Choice:
    c = Choice()
    async for ev in _events(req):
        _account(c, ev, req)
    _observe(req, metrics)
    return c


def _account(c: Choice, ev: Event, req: GenRequest) -> None:
    assert ev.delta is not None
    c.text += ev.delta.text
    if ev.logprob is not None:
        c.tokens.append(ev.logprob)
    if ev.prompt_logprobs is not None:
        c.prompt_logprobs = ev.prompt_logprobs
    c.finish_reason = ev.delta.finish_reason or c.finish_reason
    c.n_generated = req.n_generated


def _observe(req: GenRequest, metrics: Metrics) -> None:
    metrics.generation_tokens.inc(req.n_generated)
    if req.first_token_at is not None:
        metrics.ttft.observe(req.first_token_at - req.submitted)
    metrics.latency.observe(time.perf_counter() - req.submitted)


async def _collect_all(request: Request, reqs: list[GenRequest], metrics: Metrics) -> list[Choice]:
    """Wait for every choice; a client that goes away cancels them all at once."""
    work = asyncio.gather(*(_collect(r, metrics) for r in reqs))
    watch = asyncio.create_task(_wait_disconnect(request))
    try:
        done, _ = await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
        if work in done:
            return work.result()
        raise asyncio.CancelledError  # the client left: nobody reads the answer
    finally:
        watch.cancel()
        if not work.done():
            work.cancel()
            for r in reqs:
                r.cancel()


async def _wait_disconnect(request: Request) -> None:
    while not await request.is_disconnected():
        await asyncio.sleep(0.05)


async def _merged(reqs: list[GenRequest], metrics: Metrics) -> AsyncIterator[tuple[int, Event, Choice]]:
    """Events of all choices as they come, tagged with the choice index."""
    queue: asyncio.Queue[tuple[int, Event | BaseException]] = asyncio.Queue()
    choices = [Choice() for _ in reqs]

    async def pump(i: int, req: GenRequest) -> None:
        try:
            async for ev in _events(req):
                queue.put_nowait((i, ev))
        except BaseException as e:
            queue.put_nowait((i, e))

    tasks = [asyncio.create_task(pump(i, r)) for i, r in enumerate(reqs)]
    try:
        remaining = len(reqs)
        while remaining:
            i, item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            _account(choices[i], item, reqs[i])
            if item.delta is not None and item.delta.finish_reason:
                remaining -= 1
                _observe(reqs[i], metrics)
            yield i, item, choices[i]
    finally:
        for t in tasks:
            t.cancel()


def _sse(stream: AsyncIterator[str], reqs: list[GenRequest]) -> StreamingResponse:
    async def guarded() -> AsyncIterator[str]:
        try:
            async for piece in stream:
                yield piece
        except ApiError as e:
            yield _data(error_body(e.message, e.type, e.code))
            yield "data: [DONE]\n\n"
        finally:  # client disconnected or stream ended: stop generating at once
            for r in reqs:
                r.cancel()

    return StreamingResponse(
        guarded(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _data(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


__all__ = ["ApiError", "chat_completion", "completion"]
