"""The scheduler's failure paths, in process, with a fake runner: a request's failure reaches that request
only (400 for what the client sent, 500 with an error id for ours); only a runner that keeps failing is a
dead engine, and then every waiting and running request learns it at once.

FakeRunner mirrors LlamaBatchRunner's interface (has_room, free_slots, add, step, release, forget, active),
which the real-model server tests exercise for real."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from llmworks.engines.llamacpp_batch import Slot, StepOutput
from llmworks.engines.scheduler import (
    MAX_CONSECUTIVE_FAILURES,
    BadRequest,
    BatchScheduler,
    EngineDead,
    Event,
    GenRequest,
    InternalError,
    QueueFull,
    SerialScheduler,
)
from llmworks.engines.types import SamplingParams, SeqRequest, TokenLogprob
from llmworks.errors import UserError

EOS = 0


class FakeEngine:
    name = "fake"
    context_length = 64
    eos_ids: ClassVar[set[int]] = {EOS}

    @staticmethod
    def detokenize(ids: Any) -> str:
        return "".join(f"<{i}>" for i in ids)


@dataclass
class FakeRunner:
    """Each sequence yields tokens 1, 2, 3, ... then EOS after `length` of them."""

    parallel: int = 2
    length: int = 3
    step_failures: int = 0
    """The next this-many steps raise."""
    gate: threading.Event | None = None
    """When set, steps wait for it (so a test can look at requests while they run)."""
    active: dict[int, Slot] = field(default_factory=dict)
    added: list[list[int]] = field(default_factory=list)
    forgotten: int = 0

    @property
    def has_room(self) -> bool:
        return len(self.active) < self.parallel

    def free_slots(self) -> list[Slot]:
        return [Slot(i) for i in range(self.parallel) if i not in self.active]

    def add(self, req: SeqRequest) -> Slot:
        if req.params.grammar is not None and req.params.grammar.gbnf == "bad":
            raise UserError("the grammar could not be compiled.", "Simplify the schema.")
        if req.prompt == [666]:
            raise RuntimeError("a bug while starting")
        slot = Slot(min(i for i in range(self.parallel) if i not in self.active), request=req)
        slot.pending = [0]  # counts the tokens given out
        self.active[slot.seq_id] = slot
        self.added.append(req.prompt)
        return slot

    def step(self) -> list[StepOutput]:
        if self.gate is not None:
            self.gate.wait(timeout=10)
        if self.step_failures:
            self.step_failures -= 1
            raise RuntimeError("llama_decode failed with status -1")
        outs = []
        for slot in list(self.active.values()):
            assert slot.request is not None
            if not slot.request.generate:
                outs.append(StepOutput(slot, None, None, [None, TokenLogprob(1, -0.5)]))
                continue
            n = slot.pending[0] = slot.pending[0] + 1
            outs.append(StepOutput(slot, EOS if n > self.length else n))
        return outs

    def release(self, slot: Slot) -> None:
        self.active.pop(slot.seq_id, None)

    def forget(self, slot: Slot) -> None:
        self.release(slot)
        self.forgotten += 1


def request(
    prompt: list[int] | None = None, grammar: str | None = None, generate: bool = True
) -> tuple[GenRequest, queue.SimpleQueue[Event]]:
    from llmworks.engines.types import Grammar

    events: queue.SimpleQueue[Event] = queue.SimpleQueue()
    params = SamplingParams(max_tokens=16, grammar=Grammar(grammar) if grammar else None)
    seq = SeqRequest(prompt or [5, 6], params, 1 if not generate else None, generate)
    return GenRequest(seq, events.put), events


def drain(events: queue.SimpleQueue[Event]) -> list[Event]:
    out = []
    while True:
        ev = events.get(timeout=10)
        out.append(ev)
        if ev.last:
            return out


def text(evs: list[Event]) -> str:
    return "".join(e.delta.text for e in evs if e.delta)


@pytest.fixture
def batch() -> Any:
    runner = FakeRunner()
    sched = BatchScheduler(FakeEngine(), runner, max_queue=4)  # type: ignore[arg-type]
    sched.start()
    yield sched, runner
    sched.shutdown()


def test_requests_run_and_finish(batch: Any) -> None:
    sched, _ = batch
    reqs = [request() for _ in range(3)]
    sched.submit([r for r, _ in reqs])
    for _, events in reqs:
        evs = drain(events)
        assert text(evs) == "<1><2><3>" and evs[-1].delta.finish_reason == "stop"


def test_bad_grammar_fails_that_request_and_the_next_is_served(batch: Any) -> None:
    sched, _ = batch
    bad, bad_events = request(grammar="bad")
    good, good_events = request()
    sched.submit([bad, good])
    [ev] = drain(bad_events)
    assert isinstance(ev.error, BadRequest) and ev.error.status == 400 and "grammar" in ev.error.message
    assert text(drain(good_events)) == "<1><2><3>"
    assert sched.dead is None


def test_a_bug_while_starting_is_a_500_with_an_error_id(batch: Any, caplog: pytest.LogCaptureFixture) -> None:
    sched, _ = batch
    bug, bug_events = request([666])
    sched.submit([bug])
    [ev] = drain(bug_events)
    assert isinstance(ev.error, InternalError) and ev.error.status == 500
    assert ev.error.error_id in caplog.text and "a bug while starting" in caplog.text  # traceback logged
    ok, ok_events = request()
    sched.submit([ok])
    assert text(drain(ok_events)) == "<1><2><3>"


def test_a_failing_step_fails_its_requests_not_the_engine(batch: Any) -> None:
    sched, runner = batch
    runner.step_failures = 1
    a, a_events = request()
    sched.submit([a])
    evs = drain(a_events)
    assert isinstance(evs[-1].error, InternalError) and runner.forgotten == 1  # its KV cells are dropped
    b, b_events = request()
    sched.submit([b])
    assert text(drain(b_events)) == "<1><2><3>" and sched.dead is None


def test_a_runner_that_keeps_failing_is_a_dead_engine_for_everyone() -> None:
    gate = threading.Event()
    runner = FakeRunner(parallel=1, step_failures=MAX_CONSECUTIVE_FAILURES, gate=gate)
    sched = BatchScheduler(FakeEngine(), runner, max_queue=8)  # type: ignore[arg-type]
    sched.start()
    reqs = [request() for _ in range(MAX_CONSECUTIVE_FAILURES + 2)]  # some run and fail, the rest wait
    sched.submit([r for r, _ in reqs])
    gate.set()
    errors = [drain(events)[-1].error for _, events in reqs]
    running_when_it_died = MAX_CONSECUTIVE_FAILURES - 1
    assert all(isinstance(e, InternalError) for e in errors[:running_when_it_died])
    assert all(isinstance(e, EngineDead) and e.status == 503 for e in errors[running_when_it_died:])
    assert sched.dead is not None
    with pytest.raises(EngineDead):
        sched.submit([request()[0]])
    sched.shutdown()


def test_cancel_while_queued_never_starts() -> None:
    gate = threading.Event()
    runner = FakeRunner(parallel=1, gate=gate)
    sched = BatchScheduler(FakeEngine(), runner, max_queue=8)  # type: ignore[arg-type]
    sched.start()
    first, first_events = request([1])
    queued, _ = request([2])
    sched.submit([first, queued])
    queued.cancel()
    gate.set()
    assert text(drain(first_events)) == "<1><2><3>"
    later, later_events = request([3])
    sched.submit([later])
    drain(later_events)
    assert [2] not in runner.added
    sched.shutdown()


def test_cancel_while_running_frees_the_slot() -> None:
    runner = FakeRunner(parallel=1, length=10_000)
    sched = BatchScheduler(FakeEngine(), runner, max_queue=8)  # type: ignore[arg-type]
    sched.start()
    long, long_events = request([1])
    sched.submit([long])
    long_events.get(timeout=10)
    long.cancel()
    runner.length = 3
    nxt, nxt_events = request([2])
    sched.submit([nxt])
    assert text(drain(nxt_events)) == "<1><2><3>"
    sched.shutdown()


def test_queue_full_is_refused_whole() -> None:
    gate = threading.Event()
    sched = BatchScheduler(FakeEngine(), FakeRunner(parallel=1, gate=gate), max_queue=1)  # type: ignore[arg-type]
    sched.start()
    sched.submit([request()[0]])
    with pytest.raises(QueueFull):
        sched.submit([request()[0] for _ in range(3)])
    gate.set()
    sched.shutdown()


def test_scoring_requests_report_their_prompt_logprobs(batch: Any) -> None:
    sched, _ = batch
    score, events = request(generate=False)
    sched.submit([score])
    [ev] = drain(events)
    assert ev.prompt_logprobs is not None and ev.prompt_logprobs[1].logprob == -0.5


def test_shutdown_fails_what_waits() -> None:
    gate = threading.Event()
    sched = BatchScheduler(FakeEngine(), FakeRunner(parallel=1, gate=gate), max_queue=8)  # type: ignore[arg-type]
    sched.start()
    reqs = [request() for _ in range(3)]
    sched.submit([r for r, _ in reqs])
    threading.Timer(0.2, gate.set).start()
    sched.shutdown()
    assert all(drain(e)[-1].last for _, e in reqs)


def test_serial_scheduler_fails_one_request_at_a_time() -> None:
    def decode(ids: list[int], params: SamplingParams) -> Any:
        if ids == [13]:
            raise UserError("bad request", "")
        if ids == [666]:
            raise RuntimeError("bug")
        yield from ((t, None) for t in (1, 2, EOS))

    sched = SerialScheduler(FakeEngine(), decode, lambda seqs: [[None] for _ in seqs], max_queue=None)  # type: ignore[arg-type]
    sched.start()
    reqs = [request(p) for p in ([13], [666], [1])]
    sched.submit([r for r, _ in reqs])
    bad, bug, ok = (drain(e) for _, e in reqs)
    assert isinstance(bad[-1].error, BadRequest)
    assert isinstance(bug[-1].error, InternalError)
    assert text(ok) == "<1><2>" and sched.dead is None
    sched.shutdown()
