"""Schedulers: the thread that owns an engine and turns queued requests into streamed events.

`BatchScheduler` (llama.cpp) admits requests into free sequence slots and advances all of them in one
decode per step (continuous batching). `SerialScheduler` (any engine) runs one request at a time.
Both hand events to the asyncio side with `call_soon_threadsafe`, and both drop a cancelled request
(client gone) at the next step, freeing its slot at once.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from llmworks.engines.base import Engine
from llmworks.engines.llamacpp_batch import LlamaBatchRunner, Slot, TokenLogprob
from llmworks.engines.textstream import OutputProcessor
from llmworks.engines.types import Delta, SamplingParams
from llmworks.errors import UserError


class QueueFull(Exception):
    """More requests are waiting than --max-queue allows."""


class EngineDead(Exception):
    """The engine thread failed; the server needs a restart."""


@dataclass
class Event:
    delta: Delta | None = None
    logprob: TokenLogprob | None = None
    prompt_logprobs: list[TokenLogprob | None] | None = None
    error: str | None = None


@dataclass
class GenRequest:
    """One sequence to generate (a chat choice or a completion choice)."""

    prompt_ids: list[int]
    params: SamplingParams
    grammar: str | None = None
    logprobs: int | None = None
    prompt_logprobs: bool = False
    loop: asyncio.AbstractEventLoop | None = None
    queue: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    cancelled: bool = False
    submitted: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    n_generated: int = 0

    def emit(self, event: Event) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event)

    def cancel(self) -> None:
        self.cancelled = True


class Scheduler(ABC):
    def __init__(self, engine: Engine, max_queue: int) -> None:
        self.engine = engine
        self.max_queue = max_queue
        self.waiting: collections.deque[GenRequest] = collections.deque()
        self.dead: str | None = None
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"engine-{engine.name}", daemon=True)
        self._thread.start()

    @property
    @abstractmethod
    def running(self) -> int: ...

    def submit(self, requests: list[GenRequest]) -> None:
        """Queue requests (the n choices of one API call go in together, or not at all)."""
        if self.dead:
            raise EngineDead(self.dead)
        with self._cond:
            if len(self.waiting) + len(requests) > self.max_queue + self._free_capacity():
                raise QueueFull
            loop = asyncio.get_running_loop()
            for r in requests:
                r.loop = loop
                self.waiting.append(r)
            self._cond.notify()

    def shutdown(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout=30)

    def _free_capacity(self) -> int:
        """How many requests can start right away without waiting in the queue."""
        return 0

    def _next_waiting(self, block: bool) -> GenRequest | None:
        with self._cond:
            while block and not self.waiting and not self._stop:
                self._cond.wait()
            while self.waiting:
                r = self.waiting.popleft()
                if not r.cancelled:
                    return r
            return None

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as e:  # a broken engine fails every request, loudly, and stays dead
            self.dead = f"{type(e).__name__}: {e}"
            for r in list(self.waiting):
                r.emit(Event(error=self.dead))

    @abstractmethod
    def _loop(self) -> None: ...


class BatchScheduler(Scheduler):
    """Continuous batching over llama.cpp sequence slots."""

    def __init__(self, engine: Any, parallel: int, ctx_per_seq: int, max_queue: int) -> None:
        self.runner = LlamaBatchRunner(engine, parallel, ctx_per_seq)
        self.active: dict[int, tuple[GenRequest, OutputProcessor]] = {}
        super().__init__(engine, max_queue)

    @property
    def running(self) -> int:
        return len(self.active)

    def _free_capacity(self) -> int:
        return self.runner.parallel - len(self.active)

    def _loop(self) -> None:
        while not self._stop:
            self._admit(block=not self.active)
            for seq_id, (req, _) in list(self.active.items()):
                if req.cancelled:
                    self._finish(seq_id)
            if not self.active:
                continue
            try:
                outputs = self.runner.step()
            except Exception as e:
                for req, _ in self.active.values():
                    req.emit(Event(error=f"{type(e).__name__}: {e}"))
                raise
            for out in outputs:
                self._deliver(out.slot, out.token, out.logprob, out.prompt_logprobs)
        self.runner.close()

    def _admit(self, block: bool) -> None:
        while self.runner.has_room:
            req = self._next_waiting(block and not self.active)
            if req is None:
                return
            p = req.params
            slot = self.runner.add(req.prompt_ids, p, req.grammar, req.logprobs, req.prompt_logprobs)
            max_new = min(p.max_tokens, self.runner.ctx_per_seq - len(req.prompt_ids))
            proc = OutputProcessor(self.engine.detokenize, self.engine.eos_ids, p.stop, max_new)
            self.active[slot.seq_id] = (req, proc)

    def _deliver(self, slot: Slot, token: int, logprob: TokenLogprob | None, prompt_lp: Any) -> None:
        req, proc = self.active[slot.seq_id]
        if req.first_token_at is None:
            req.first_token_at = time.perf_counter()
        delta = proc.feed(token)
        req.n_generated = proc.n_generated
        req.emit(Event(delta, logprob if delta.token_ids else None, prompt_lp))
        if delta.finish_reason:
            self._finish(slot.seq_id)

    def _finish(self, seq_id: int) -> None:
        self.active.pop(seq_id, None)
        slot = self.runner.slots.get(seq_id)
        if slot is not None:
            self.runner.release(slot)


class SerialScheduler(Scheduler):
    """One request at a time through `engine.generate` (the transformers engine, adapters)."""

    def __init__(self, engine: Engine, max_queue: int) -> None:
        self.current: GenRequest | None = None
        super().__init__(engine, max_queue)

    @property
    def running(self) -> int:
        return int(self.current is not None)

    def _free_capacity(self) -> int:
        return int(self.current is None)

    def _loop(self) -> None:
        while not self._stop:
            req = self._next_waiting(block=True)
            if req is None:
                continue
            self.current = req
            try:
                for delta in self.engine.generate(req.prompt_ids, req.params):
                    if req.cancelled:
                        break
                    if req.first_token_at is None:
                        req.first_token_at = time.perf_counter()
                    req.n_generated += len(delta.token_ids)
                    req.emit(Event(delta))
            except UserError as e:  # this request's fault: fail it, keep serving
                req.emit(Event(error=e.problem))
            finally:
                self.current = None
