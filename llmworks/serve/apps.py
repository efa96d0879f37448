"""Applications served as models: `rag:NAME` (a knowledge base) and `agent:NAME` (an agent) answer on
`/v1/chat/completions` next to the plain models, through the same OpenAI API and web chat.

An app is a `ChatApp`: it streams `AppEvent`s (text for the reply, and data for the app's own field). The
reply's text is the message content; the data goes in one documented field of the response, `llmworks`
(OpenAI clients ignore fields they do not know):

- not streamed: `response["llmworks"]` holds every data event merged (lists are concatenated), e.g.
  `{"sources": [...]}` for RAG or `{"steps": [...]}` for an agent;
- streamed: each data event is a chunk with `choices[0].delta == {}` and the data in `chunk["llmworks"]`,
  and the merged data is repeated on the chunk that carries `finish_reason`.

The app runs on a worker thread (apps call models through `llmworks.client`, which blocks); a client that
disconnects cancels it (`AppContext.cancelled`), and an app's error fails that request only.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from llmworks.client.base import GenOptions
from llmworks.errors import UserError
from llmworks.serve.protocol import ChatCompletionRequest, error_body, new_id, now, usage

__all__ = ["AppContext", "AppEvent", "ChatApp", "app_chat_completion", "merge_data"]

log = logging.getLogger("llmworks.serve")


@dataclass
class AppEvent:
    text: str = ""
    """A piece of the reply."""
    data: Mapping[str, Any] | None = None
    """Data for the response's `llmworks` field (sources, steps, ...)."""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class AppContext:
    """What an app may know of the request it serves."""

    allowed: frozenset[str] | None = None
    """The models (apps included) the request's API key may use; None: all of them."""
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def may_use(self, model: str) -> bool:
        return self.allowed is None or model in self.allowed


class ChatApp(ABC):
    name: str
    """The model id it is served as, e.g. `rag:manual`."""
    description: str = ""
    owned_by: str = "llmworks"

    @abstractmethod
    def chat_stream(
        self, messages: list[dict[str, Any]], options: GenOptions, context: AppContext
    ) -> Iterator[AppEvent]:
        """Answer the conversation, streamed. UserError: the request's fault (HTTP 400)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


def merge_data(into: dict[str, Any], data: Mapping[str, Any]) -> None:
    """Merge an event's data: lists are concatenated, other values replaced."""
    for k, v in data.items():
        if isinstance(v, list) and isinstance(into.get(k), list):
            into[k] = [*into[k], *v]
        else:
            into[k] = v


async def app_chat_completion(
    app: ChatApp, body: ChatCompletionRequest, request: Request, options: GenOptions, context: AppContext
) -> Response:
    messages = [m.model_dump(exclude_none=True) for m in body.messages]
    events = _run_in_thread(app, messages, options, context)
    rid, created = new_id("chatcmpl"), now()
    head = {"id": rid, "created": created, "model": app.name}
    info = request.scope.setdefault("llmworks", {})
    info["model"] = app.name
    if body.stream:
        return StreamingResponse(
            _stream(events, head, body.include_usage, context, info),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    text, data, finish, n_prompt, n_completion = [], {}, "stop", 0, 0
    try:
        async for ev in events:
            text.append(ev.text)
            if ev.data:
                merge_data(data, ev.data)
            finish = ev.finish_reason or finish
            n_prompt += ev.prompt_tokens
            n_completion += ev.completion_tokens
    except (UserError, asyncio.CancelledError):
        raise
    except Exception as e:  # the app's bug fails this request (logged with an id), not the server
        raise _internal(app, e) from None
    finally:
        context.cancel.set()
    info.update(prompt_tokens=n_prompt, completion_tokens=n_completion)
    message = {"role": "assistant", "content": "".join(text)}
    return JSONResponse(
        {
            **head,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": usage(n_prompt, n_completion),
            "llmworks": data,
        }
    )


async def _stream(
    events: AsyncIterator[AppEvent],
    head: dict[str, Any],
    include_usage: bool,
    context: AppContext,
    info: dict,
) -> AsyncIterator[str]:
    import json

    def chunk(delta: dict[str, Any], finish: str | None = None, extra: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {
            **head,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if extra is not None:
            body["llmworks"] = extra
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    data: dict[str, Any] = {}
    finish, n_prompt, n_completion = "stop", 0, 0
    try:
        yield chunk({"role": "assistant", "content": ""})
        async for ev in events:
            if ev.text:
                yield chunk({"content": ev.text})
            if ev.data:
                merge_data(data, ev.data)
                yield chunk({}, extra=dict(ev.data))
            finish = ev.finish_reason or finish
            n_prompt += ev.prompt_tokens
            n_completion += ev.completion_tokens
        yield chunk({}, finish, data)
        info.update(prompt_tokens=n_prompt, completion_tokens=n_completion)
        if include_usage:
            yield (
                "data: "
                + json.dumps(
                    {
                        **head,
                        "object": "chat.completion.chunk",
                        "choices": [],
                        "usage": usage(n_prompt, n_completion),
                    }
                )
                + "\n\n"
            )
    except UserError as e:
        yield f"data: {json.dumps(error_body(f'{e.problem} {e.fix}'.strip(), 'invalid_request_error'))}\n\n"
    except Exception as e:
        err = _internal_error(head["model"], e)
        yield f"data: {json.dumps(error_body(err, 'server_error', 'internal_error'))}\n\n"
    finally:
        context.cancel.set()  # the client left or the answer is done: the app stops
    yield "data: [DONE]\n\n"


def _internal_error(name: str, e: Exception) -> str:
    error_id = uuid.uuid4().hex[:12]
    log.error("app %s failed (error id %s)", name, error_id, exc_info=e)
    return (
        f"Internal error {type(e).__name__} in {name} (error id {error_id}); the server log has the details."
    )


def _internal(app: ChatApp, e: Exception) -> Exception:
    from llmworks.serve.generation import ApiError

    return ApiError(500, _internal_error(app.name, e), "server_error", "internal_error")


def _run_in_thread(
    app: ChatApp, messages: list[dict[str, Any]], options: GenOptions, context: AppContext
) -> AsyncIterator[AppEvent]:
    """The app's blocking generator on a worker thread, as an async iterator (errors re-raised here)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[AppEvent | BaseException | None] = asyncio.Queue()

    def work() -> None:
        try:
            for ev in app.chat_stream(messages, options, context):
                if context.cancelled:
                    break
                loop.call_soon_threadsafe(queue.put_nowait, ev)
        except BaseException as e:
            loop.call_soon_threadsafe(queue.put_nowait, e)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=work, name=f"app-{app.name}", daemon=True).start()

    async def events() -> AsyncIterator[AppEvent]:
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    return events()
