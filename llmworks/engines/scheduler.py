"""Schedulers: the one thread that drives an engine, turning submitted requests into streamed events.

Every request to an engine — the CLI's, the in-process client's, the server's — is a `GenRequest` queued
here, so an engine is thread-safe and concurrent callers share its batch. `BatchScheduler` (llama.cpp)
admits requests into free sequence slots and advances all of them in one decode per step (continuous
batching); `SerialScheduler` (any other engine) runs one at a time.

Failures are typed and scoped: a request the engine cannot run (a bad grammar, a prompt too long) fails
with `BadRequest`; an unexpected error while serving it fails only the requests it touched with
`InternalError` (logged with its traceback and an error id); only repeated failures of the engine itself
(`EngineDead`) fail everything, and every later submit, at once.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llmworks.engines.textstream import OutputProcessor
from llmworks.engines.types import Delta, SamplingParams, SeqRequest, TokenLogprob, shared_prefix
from llmworks.errors import UserError

if TYPE_CHECKING:
    from llmworks.engines.base import Engine
    from llmworks.engines.llamacpp_batch import LlamaBatchRunner, Slot, StepOutput

log = logging.getLogger("llmworks.engine")

MAX_CONSECUTIVE_FAILURES = 3
"""Steps in a row that raise before the engine is declared dead (one bad step only fails its requests)."""


class RequestFailed(Exception):
    """Why one request failed; `status` is the HTTP status the server answers with."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(RequestFailed):
    """What the client sent cannot run (the engine found out; validation missed it)."""

    status = 400
    code = "invalid_request"


class InternalError(RequestFailed):
    """Our fault: logged with its traceback under `error_id`."""

    code = "internal_error"

    def __init__(self, message: str, error_id: str) -> None:
        super().__init__(f"{message} (error id {error_id})")
        self.error_id = error_id


class EngineDead(RequestFailed):
    """The engine failed for good; the server must be restarted."""

    status = 503
    code = "engine_dead"


class QueueFull(Exception):
    """More requests are waiting than `max_queue` allows."""


@dataclass
class Event:
    """What a request's sink receives: a delta, the prompt's log-probabilities (once), or its failure."""

    delta: Delta | None = None
    prompt_logprobs: list[TokenLogprob | None] | None = None
    error: RequestFailed | None = None

    @property
    def last(self) -> bool:
        return self.error is not None or (self.delta is not None and self.delta.finish_reason is not None)


@dataclass
class GenRequest:
    """One sequence to run: a chat or completion choice, or a scoring request (`seq.generate` False)."""

    seq: SeqRequest
    sink: Callable[[Event], None] = lambda _ev: None
    """Called on the scheduler thread with each event (thread-safe hand-off is the sink's job)."""
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    cancelled: bool = False
    submitted: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    n_generated: int = 0

    def cancel(self) -> None:
        """Stop at the next step (the client went away); the request gets no more events."""
        self.cancelled = True

    def emit(self, event: Event) -> None:
        if not self.cancelled or event.error is not None:
            self.sink(event)


class Scheduler(ABC):
    def __init__(self, engine: Engine, max_queue: int | None) -> None:
        self.engine = engine
        self.max_queue = max_queue
        self.waiting: collections.deque[GenRequest] = collections.deque()
        self.dead: EngineDead | None = None
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    @property
    @abstractmethod
    def running(self) -> int:
        """Requests being generated right now."""

    @property
    @abstractmethod
    def capacity(self) -> int:
        """Requests that can run at once."""

    def start(self) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"engine-{self.engine.name}", daemon=True
                )
                self._thread.start()

    def submit(self, requests: Sequence[GenRequest]) -> None:
        """Queue requests (the n choices of one API call go in together, or not at all)."""
        with self._cond:
            if self.dead is not None:
                raise self.dead
            if self._stop:
                raise EngineDead(f"the engine of {self.engine.name} was shut down")
            free = max(0, self.capacity - self.running)
            if self.max_queue is not None and len(self.waiting) + len(requests) > self.max_queue + free:
                raise QueueFull
            self.waiting.extend(requests)
            self._cond.notify()
        self.start()

    def shutdown(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._fail_all(EngineDead(f"the engine of {self.engine.name} was shut down"))

    # -- the thread --

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as e:  # the engine itself failed: every request learns it at once
            log.error("engine %s died", self.engine.name, exc_info=e)
            dead = EngineDead(
                f"the engine of {self.engine.name} failed ({type(e).__name__}: {e}); restart the server"
            )
            with self._cond:
                self.dead = dead
            self._fail_all(dead)

    @abstractmethod
    def _loop(self) -> None: ...

    @abstractmethod
    def _in_flight(self) -> list[GenRequest]: ...

    def _fail_all(self, error: RequestFailed) -> None:
        with self._cond:
            victims = [*self.waiting, *self._in_flight()]
            self.waiting.clear()
        for r in victims:
            r.emit(Event(error=error))

    def _take(self, block: bool, pick: Callable[[GenRequest], bool] | None = None) -> GenRequest | None:
        """The next waiting request (the first that `pick` accepts); cancelled ones are dropped."""
        with self._cond:
            while block and not self.waiting and not self._stop:
                self._cond.wait()
            for r in list(self.waiting):
                if r.cancelled:
                    self.waiting.remove(r)
                    continue
                if pick is None or pick(r):
                    self.waiting.remove(r)
                    return r
            return None

    def _fail(self, req: GenRequest, e: BaseException, what: str) -> None:
        """Fail one request: a UserError is the client's (400), anything else ours (500, logged)."""
        if isinstance(e, UserError):
            req.emit(Event(error=BadRequest(f"{e.problem} {e.fix}".strip())))
            return
        error_id = uuid.uuid4().hex[:12]
        log.error("request %s failed while %s (error id %s)", req.id, what, error_id, exc_info=e)
        req.emit(Event(error=InternalError(f"the server failed while {what}: {type(e).__name__}", error_id)))

    def _output_processor(self, req: GenRequest) -> OutputProcessor:
        p = req.seq.params
        max_new = min(p.max_tokens, self.engine.context_length - len(req.seq.prompt))
        return OutputProcessor(self.engine.detokenize, self.engine.eos_ids, p.stop, max(1, max_new))

    @staticmethod
    def _feed(req: GenRequest, proc: OutputProcessor, token: int, lp: TokenLogprob | None) -> Delta:
        if req.first_token_at is None:
            req.first_token_at = time.perf_counter()
        delta = proc.feed(token)
        delta.logprob = lp  # also for EOS: completions report the generated token whatever it is
        req.n_generated = proc.n_generated
        return delta


class BatchScheduler(Scheduler):
    """Continuous batching over the sequence slots of a llama.cpp runner."""

    def __init__(self, engine: Engine, runner: LlamaBatchRunner, max_queue: int | None) -> None:
        super().__init__(engine, max_queue)
        self.runner = runner
        self.active: dict[int, tuple[GenRequest, OutputProcessor | None]] = {}

    @property
    def running(self) -> int:
        return len(self.active)

    @property
    def capacity(self) -> int:
        return self.runner.parallel

    def _in_flight(self) -> list[GenRequest]:
        return [r for r, _ in self.active.values()]

    def _loop(self) -> None:
        failures = 0
        while not self._stop:
            self._admit(block=not self.active)
            for seq_id, (req, _) in list(self.active.items()):
                if req.cancelled:
                    self._finish(seq_id)
            if not self.active:
                continue
            try:
                outputs = self.runner.step()
            except Exception as e:  # fails the requests of this step, not the server (unless it persists)
                failures += 1
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    raise  # the engine is dead: _run fails everything, these requests included
                for seq_id, (req, _) in list(self.active.items()):
                    self._fail(req, e, "decoding")
                    self._finish(seq_id, forget=True)
                continue
            failures = 0
            for out in outputs:
                try:
                    self._deliver(out)
                except Exception as e:
                    req, _ = self.active[out.slot.seq_id]
                    self._fail(req, e, "streaming the output")
                    self._finish(out.slot.seq_id, forget=True)
        self._fail_all(EngineDead(f"the engine of {self.engine.name} was shut down"))
        for seq_id in list(self.active):
            self._finish(seq_id)

    def _admit(self, block: bool) -> None:
        while self.runner.has_room:
            req = self._take(block and not self.active, self._worth_starting)
            if req is None:
                return
            try:
                slot = self.runner.add(req.seq)
            except Exception as e:  # this request cannot run: fail it alone, keep serving
                self._fail(req, e, "starting the sequence")
                continue
            self.active[slot.seq_id] = (req, self._output_processor(req) if req.seq.generate else None)

    def _worth_starting(self, req: GenRequest) -> bool:
        """A scoring request waits for a running scoring request that shares a longer prefix with it (the
        options of one question), so it reuses that slot's cache instead of reading the prefix again."""
        if req.seq.generate:
            return True
        prompt = req.seq.prompt
        free = max((shared_prefix(s.cached, prompt) for s in self.runner.free_slots()), default=0)
        return all(
            r.seq.generate or shared_prefix(r.seq.prompt, prompt) < free + 16 for r, _ in self.active.values()
        )

    def _deliver(self, out: StepOutput) -> None:
        req, proc = self.active[out.slot.seq_id]
        if out.error is not None:
            self._fail(req, out.error, "sampling")
            self._finish(out.slot.seq_id)
            return
        if out.token is None or proc is None:  # a scoring request: its prompt is read, it is done
            req.emit(Event(Delta("", [], "stop"), out.prompt_logprobs))
            self._finish(out.slot.seq_id)
            return
        delta = self._feed(req, proc, out.token, out.logprob)
        req.emit(Event(delta, out.prompt_logprobs))
        if delta.finish_reason:
            self._finish(out.slot.seq_id)

    def _finish(self, seq_id: int, forget: bool = False) -> None:
        self.active.pop(seq_id, None)
        slot: Slot | None = self.runner.active.get(seq_id)
        if slot is not None:
            (self.runner.forget if forget else self.runner.release)(slot)


class SerialScheduler(Scheduler):
    """One request at a time on an engine without a batch runner (transformers: HF dirs, adapters).

    Consecutive scoring requests are handed to the engine together, so they go in padded batches.
    """

    def __init__(
        self,
        engine: Engine,
        decode: Callable[[list[int], SamplingParams], Iterator[tuple[int, TokenLogprob | None]]],
        score: Callable[[list[SeqRequest]], list[list[TokenLogprob | None]]],
        max_queue: int | None,
        score_batch: int = 64,
    ) -> None:
        super().__init__(engine, max_queue)
        self._decode, self._score, self._score_batch = decode, score, score_batch
        self.current: list[GenRequest] = []

    @property
    def running(self) -> int:
        return len(self.current)

    @property
    def capacity(self) -> int:
        return 1

    def _in_flight(self) -> list[GenRequest]:
        return list(self.current)

    def _loop(self) -> None:
        failures = 0
        while not self._stop:
            req = self._take(block=True)
            if req is None:
                continue
            batch = [req]
            while not req.seq.generate and len(batch) < self._score_batch:
                more = self._take(False, lambda r: not r.seq.generate)
                if more is None:
                    break
                batch.append(more)
            self.current = batch
            try:
                self._serve(batch)
                failures = 0
            except Exception as e:  # fails this batch; a UserError is the client's and says nothing of us
                failures += 0 if isinstance(e, UserError) else 1
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    raise  # the engine is dead: _run fails everything, this batch included
                for r in batch:
                    self._fail(r, e, "generating" if r.seq.generate else "scoring")
            self.current = []

    def _serve(self, batch: list[GenRequest]) -> None:
        scored = [r for r in batch if r.seq.prompt_logprobs_from is not None]
        prompt_lps = (
            dict(zip(map(id, scored), self._score([r.seq for r in scored]), strict=True)) if scored else {}
        )
        for req in batch:
            if not req.seq.generate:
                req.emit(Event(Delta("", [], "stop"), prompt_lps.get(id(req))))
                continue
            proc = self._output_processor(req)
            tokens = self._decode(req.seq.prompt, req.seq.params)
            try:
                for k, (token, lp) in enumerate(tokens):
                    if req.cancelled:
                        break
                    delta = self._feed(req, proc, token, lp)
                    req.emit(Event(delta, prompt_lps.get(id(req)) if k == 0 else None))
                    if delta.finish_reason:
                        break
            finally:
                tokens.close()  # type: ignore[attr-defined]
