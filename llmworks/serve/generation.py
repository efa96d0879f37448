"""Chat and text completions: OpenAI request -> engine requests -> OpenAI response or SSE stream.

A request is validated whole before it is queued (the chat policy renders it, the output constraint is
compiled, token ids are checked, the context is checked), so what the client got wrong is a 400 that says
why. Once queued, a request's failure reaches only that request, with the status its error carries.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from llmworks.client.base import GenOptions
from llmworks.client.local import chat_request, sampling
from llmworks.engines.base import Engine
from llmworks.engines.scheduler import EngineDead, Event, GenRequest, QueueFull, RequestFailed
from llmworks.engines.types import SamplingParams, SeqRequest, TokenLogprob
from llmworks.errors import UserError
from llmworks.models.chat_policy import ChatPrompt, ReplyStream, parse_reply
from llmworks.serve.metrics import Metrics
from llmworks.serve.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    error_body,
    new_id,
    now,
    usage,
)
from llmworks.serve.served import ServedModel


class ClientGone(Exception):
    """The client closed the connection before its answer was ready: its generation is stopped and the app
    logs one line (a bare CancelledError would reach uvicorn, which logs it as a crash with a traceback)."""


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

    @staticmethod
    def of(e: RequestFailed) -> ApiError:
        """A failed request's error with its status: 400 the client's, 500 ours (with an error id), 503 the
        engine's."""
        type_ = "invalid_request_error" if e.status < 500 else "server_error"
        return ApiError(e.status, e.message, type_, e.code)


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
    messages = [m.model_dump(exclude_none=True) for m in body.messages]
    n_logprobs = (body.top_logprobs or 0) if body.logprobs else None
    opts = dataclasses.replace(chat_options(body), tool_grammar=model.tool_grammar)
    try:  # off the event loop: a large prompt or schema must not stall the other requests
        prompt, ids, params = await asyncio.to_thread(chat_request, eng, messages, opts, n_logprobs)
    except UserError as e:
        raise ApiError(400, f"{e.problem} {e.fix}".strip()) from None
    max_tokens = _max_tokens(model, len(ids), body.max_completion_tokens or body.max_tokens)
    params = dataclasses.replace(params, max_tokens=max_tokens)
    reqs = [GenRequest(SeqRequest(ids, _choice_params(params, i))) for i in range(body.n)]
    _note(request, model, len(ids))
    _submit(model, reqs, metrics)
    rid, created = new_id("chatcmpl"), now()
    head = {"id": rid, "created": created, "model": model.name}
    extra = {"prompt_token_ids": ids} if body.return_token_ids else {}
    if body.stream:
        stream = _chat_stream(eng, reqs, head, prompt, body.include_usage, len(ids), metrics, request, extra)
        return _sse(stream, reqs)
    choices = await _collect_all(request, reqs, metrics)
    out = []
    for i, c in enumerate(choices):
        message: dict[str, Any] = {"role": "assistant", "content": c.text}
        finish = c.finish_reason
        content, calls = parse_reply(c.text, prompt.tool_mode)
        if calls:
            message["content"] = content
            message["tool_calls"], finish = [t.to_openai() for t in calls], "tool_calls"
        content_lps = [_chat_logprob(eng, t) for t in c.tokens if t.token not in eng.eos_ids]
        logprobs = {"content": content_lps} if n_logprobs is not None else None
        choice: dict[str, Any] = {
            "index": i,
            "message": message,
            "logprobs": logprobs,
            "finish_reason": finish,
        }
        if body.return_token_ids:
            choice["token_ids"] = [t.token for t in c.tokens] if c.tokens else None
        out.append(choice)
    n_gen = sum(c.n_generated for c in choices)
    _note(request, model, len(ids), n_gen, reqs)
    return JSONResponse(
        {**head, "object": "chat.completion", "choices": out, "usage": usage(len(ids), n_gen), **extra}
    )


async def _chat_stream(
    eng: Engine,
    reqs: list[GenRequest],
    head: dict[str, Any],
    prompt: ChatPrompt,
    include_usage: bool,
    n_prompt: int,
    metrics: Metrics,
    request: Request,
    extra: dict[str, Any],
) -> AsyncIterator[str]:
    def chunk(i: int, delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> str:
        body = {
            **head,
            "object": "chat.completion.chunk",
            "choices": [{"index": i, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
        }
        return _data(body)

    for i in range(len(reqs)):
        yield chunk(i, {"role": "assistant", "content": ""})
    replies = [ReplyStream(prompt) for _ in reqs]
    n_generated = 0
    async for i, ev, c in _merged(reqs, metrics):
        delta = ev.delta
        assert delta is not None
        lp = {"content": [_chat_logprob(eng, delta.logprob)]} if delta.logprob and delta.token_ids else None
        shown = replies[i].feed(delta.text)
        if shown or lp:
            yield chunk(i, {"content": shown}, logprobs=lp)
        if delta.finish_reason:
            n_generated += c.n_generated
            finish = delta.finish_reason
            rest, calls = replies[i].finish()
            if calls:
                finish = "tool_calls"
                for k, call in enumerate(calls):
                    start = {"index": k, "id": call.id, "type": "function"}
                    yield chunk(
                        i, {"tool_calls": [{**start, "function": {"name": call.name, "arguments": ""}}]}
                    )
                    yield chunk(i, {"tool_calls": [{"index": k, "function": {"arguments": call.arguments}}]})
            elif rest:
                yield chunk(i, {"content": rest})
            yield chunk(i, {}, finish)
    _note(request, None, n_prompt, n_generated, reqs)
    if include_usage:
        yield _data(
            {
                **head,
                "object": "chat.completion.chunk",
                "choices": [],
                "usage": usage(n_prompt, n_generated),
                **extra,
            }
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
    try:  # off the event loop: tokenizing large prompts must not stall the other requests
        reqs, prompt_ids_all = await asyncio.to_thread(_completion_requests, model, body)
    except UserError as e:
        raise ApiError(400, f"{e.problem} {e.fix}".strip(), param="prompt") from None
    n_prompt = sum(len(ids) for ids in prompt_ids_all)
    _note(request, model, n_prompt)
    _submit(model, reqs, metrics)
    rid, created = new_id("cmpl"), now()
    head = {"id": rid, "created": created, "model": model.name}
    prompt_of = [prompt_ids_all[k // body.n] for k in range(len(reqs))]
    drop = body.max_tokens == 0  # echo-only scoring: the one token generated is not part of the answer
    if body.stream:
        return _sse(
            _completion_stream(eng, reqs, head, body, prompt_of, n_prompt, drop, metrics, request), reqs
        )
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
    _note(request, model, n_prompt, completion_tokens, reqs)
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
    request: Request,
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
        if not drop and (delta.text or delta.logprob):
            lp = (
                _completion_logprobs(eng, [], [], [delta.logprob])
                if delta.logprob and body.logprobs is not None
                else None
            )
            yield chunk(i, delta.text, lp=lp)
        if delta.finish_reason:
            n_generated += 0 if drop else c.n_generated
            yield chunk(i, "", "length" if drop else delta.finish_reason)
    _note(request, None, n_prompt, n_generated, reqs)
    if body.include_usage:
        yield _data(
            {**head, "object": "text_completion", "choices": [], "usage": usage(n_prompt, n_generated)}
        )
    yield "data: [DONE]\n\n"


def _completion_requests(
    model: ServedModel, body: CompletionRequest
) -> tuple[list[GenRequest], list[list[int]]]:
    """One request per prompt and choice, validated (token ids in the vocabulary, room in the context)."""
    eng = model.engine
    want_prompt_lp = body.echo and body.logprobs is not None
    reqs, prompt_ids_all = [], []
    base = sampling(_options(body, body.max_tokens or 1), body.stop_list(), logprobs=body.logprobs)
    for p in _prompts(body.prompt):
        ids = eng.encode_prompt(p)
        prompt_ids_all.append(ids)
        max_tokens = _max_tokens(
            model, len(ids), body.max_tokens if body.max_tokens > 0 else 1, explicit=body.max_tokens > 0
        )
        for c in range(body.n):
            params = _choice_params(dataclasses.replace(base, max_tokens=max_tokens), c)
            reqs.append(GenRequest(SeqRequest(ids, params, 1 if want_prompt_lp and len(ids) > 1 else None)))
    return reqs, prompt_ids_all


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
        raise ApiError(400, "prompt is empty: send a string, strings, or token ids.", param="prompt")
    if all(isinstance(p, int) for p in prompt):
        return [list(prompt)]  # type: ignore[arg-type]
    return list(prompt)  # type: ignore[arg-type]


# -- shared plumbing --


def chat_options(body: ChatCompletionRequest) -> GenOptions:
    return _options(body, body.max_completion_tokens or body.max_tokens or 0)


def _options(body: Any, max_tokens: int) -> GenOptions:
    """The request's sampling options (OpenAI's defaults: temperature 1)."""
    return GenOptions(
        max_tokens=max(1, max_tokens),
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        top_k=body.top_k or 0,
        min_p=body.min_p or 0.0,
        seed=body.seed,
        stop=tuple(body.stop_list()),
        repetition_penalty=body.repetition_penalty or 1.0,
        tools=tuple(body.tools) if getattr(body, "tools", None) else None,
        tool_choice=getattr(body, "tool_choice", None),
        response_format=getattr(body, "response_format", None),
    )


def _choice_params(params: SamplingParams, choice: int) -> SamplingParams:
    """n > 1 with a seed: each choice gets its own derived seed, so choices differ yet stay reproducible."""
    if params.seed is None or choice == 0:
        return params
    return dataclasses.replace(params, seed=(params.seed + choice) % 2**64)


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
    loop = asyncio.get_running_loop()
    for r in reqs:
        r.sink = _Sink(loop, asyncio.Queue())
    try:
        model.engine.submit(reqs)
    except QueueFull:
        raise ApiError(
            429,
            f"The server is busy: more than {model.engine.max_queue} requests are waiting. Retry shortly.",
            "rate_limit_error",
            "queue_full",
            headers={"Retry-After": "1"},
        ) from None
    except EngineDead as e:
        raise ApiError.of(e) from None
    metrics.prompt_tokens.inc(sum(len(r.seq.prompt) for r in reqs))


class _Sink:
    """Hands events from the engine thread to the request's asyncio queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Event]) -> None:
        self.loop, self.queue = loop, queue

    def __call__(self, event: Event) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event)


async def _events(req: GenRequest) -> AsyncIterator[Event]:
    assert isinstance(req.sink, _Sink)
    while True:
        ev = await req.sink.queue.get()
        if ev.error is not None:
            raise ApiError.of(ev.error)
        yield ev
        if ev.last:
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
    if ev.delta.logprob is not None:
        c.tokens.append(ev.delta.logprob)
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
        raise ClientGone  # nobody reads the answer
    finally:
        watch.cancel()
        if not work.done():
            work.cancel()
            work.add_done_callback(_retrieved)  # else asyncio logs "exception was never retrieved"
            for r in reqs:
                r.cancel()


def _retrieved(f: asyncio.Future[Any]) -> None:
    if not f.cancelled():
        f.exception()


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
            if item.last:
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


def _note(
    request: Request,
    model: ServedModel | None,
    n_prompt: int,
    n_completion: int | None = None,
    reqs: list[GenRequest] | None = None,
) -> None:
    """What the request log line reports (the middleware writes it when the response ends)."""
    info = request.scope.setdefault("llmworks", {})
    if model is not None:
        info["model"] = model.name
    info["prompt_tokens"] = n_prompt
    if n_completion is not None:
        info["completion_tokens"] = n_completion
    firsts = [r.first_token_at - r.submitted for r in reqs or () if r.first_token_at is not None]
    if firsts:
        info["ttft"] = min(firsts)


def _data(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


__all__ = ["ApiError", "ClientGone", "chat_completion", "chat_options", "completion"]
