"""The sandbox for untrusted code (model-written programs, tool arguments): a separate `python -I` process.

Never `exec` model code in our own process. Here it runs in a child that:
- starts from a clean environment (no API keys, no proxies; `child_env`), in a directory of its own;
- has its own session and process group, killed as a whole by a wall-clock timeout (`run`, `kill_group`);
- runs in an empty network namespace where unprivileged user namespaces work (`netns_prefix`);
- for the interpreter (`PythonSandbox`): rlimits (address space, CPU seconds, processes, file size, open
  files); a seccomp filter that refuses new processes and threads and `execve` (root ignores the process
  rlimit); and Landlock where the kernel has it: read-only access to the Python installation and system
  libraries, read-write to its scratch directory only, no TCP, no signals or abstract sockets outside itself.

The HumanEval runner (`llmworks.eval.code_exec`) uses `run` and `netns_prefix` with its own child script;
the agent's `python` tool uses `PythonSandbox`, an interpreter that keeps its state across calls.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import logging
import os
import platform
import selectors
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = [
    "CellResult",
    "Limits",
    "PythonSandbox",
    "child_env",
    "kill_group",
    "landlock_abi",
    "netns_prefix",
    "run",
]


@functools.cache
def netns_prefix() -> tuple[str, ...]:
    """`unshare ... --net` when an empty network namespace can be made unprivileged here, else ()."""
    unshare = shutil.which("unshare")
    if unshare is not None:
        prefix = (unshare, "--user", "--map-root-user", "--net")
        try:
            probe = subprocess.run(
                [*prefix, sys.executable, "-I", "-c", "pass"],
                capture_output=True,
                timeout=30,
            )
            if probe.returncode == 0:
                return prefix
        except (OSError, subprocess.TimeoutExpired):
            pass
    log.warning("no network namespace available: code execution blocks sockets in-process only (best effort)")
    return ()


def child_env(home: Path | str, **extra: str) -> dict[str, str]:
    """The whole environment of a sandboxed child: nothing inherited (no keys, no proxies)."""
    return {"PATH": os.defpath, "HOME": str(home), "TMPDIR": str(home), "LANG": "C.UTF-8", **extra}


def run(cmd: Sequence[str], cwd: Path | str, env: dict[str, str], timeout: float) -> tuple[bytes, int] | None:
    """Run `cmd` in its own session with no stdin; (stdout, return code), or None when it ran past `timeout`
    seconds (then its whole process group is killed: anything it started dies too)."""
    with subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    ) as proc:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            return None
    return out, proc.returncode


def kill_group(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    """SIGKILL the process group `proc` leads, then reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@functools.cache
def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0: not available)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        return max(0, int(libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))))
    except (OSError, AttributeError):
        return 0


# -- the persistent interpreter --


@dataclass(frozen=True)
class Limits:
    """What one sandboxed interpreter may use."""

    seconds: float = 10.0
    """Wall clock per call: the code is interrupted, and killed with its process group if it ignores that."""
    cpu_seconds: int = 10
    """CPU time per call."""
    session_cpu_seconds: int = 300
    """CPU time of the whole session (a hard limit: past it the interpreter is killed)."""
    memory_mb: int = 1024
    """Address space (numpy and matplotlib take ~300 MB of it when imported)."""
    processes: int = 0
    """New processes or threads the code may start (0: none)."""
    file_mb: int = 16
    """Largest file the code may write."""
    scratch_mb: int = 256
    """All files in the scratch directory; past it they are deleted and the interpreter restarted."""
    open_files: int = 64
    output_chars: int = 20_000
    """Printed output kept per call; printing more stops the code."""


@dataclass
class CellResult:
    """What one call did. `stopped` says why the code was stopped (None: it ran to its end or raised)."""

    output: str = ""
    value: str | None = None
    """repr() of the last expression, as a notebook shows it."""
    error: str | None = None
    """The exception, with the traceback lines of the code itself."""
    stopped: str | None = None
    files: list[Path] = field(default_factory=list)
    """Files the code created or changed in the scratch directory."""
    restarted: bool = False
    """The interpreter was killed, so earlier variables are gone."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and self.stopped is None

    def text(self) -> str:
        """The result as the model reads it."""
        parts = [self.output.rstrip("\n")] if self.output.strip() else []
        if self.value is not None:
            parts.append(self.value)
        if self.error:
            parts.append(self.error.rstrip())
        if self.stopped:
            parts.append(f"[stopped: {self.stopped}]")
        if self.restarted:
            parts.append("[the interpreter was restarted: variables from earlier calls are gone]")
        if self.files:
            parts.append("[files: " + ", ".join(p.name for p in self.files) + "]")
        return "\n".join(parts) if parts else "(no output: print() what you want to see)"


class PythonSandbox:
    """A sandboxed Python interpreter that keeps its variables across `run` calls (one agent run).

    The interpreter starts on the first call and restarts after it is killed (timeout, crash, the scratch
    quota). Files the code writes land in `scratch` (its only writable place); `close` ends the process and
    deletes a scratch directory it made itself.
    """

    _seed_cache = True

    def __init__(self, scratch: Path | str | None = None, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._own_scratch = scratch is None
        self.scratch = Path(scratch or tempfile.mkdtemp(prefix="llmworks-python-")).resolve()
        self.scratch.mkdir(parents=True, exist_ok=True)
        self._proc: subprocess.Popen[bytes] | None = None
        self._killed = False
        self.confinement = "landlock" if landlock_abi() else "none"
        """How file access is confined: "landlock", or "none" (a kernel without Landlock)."""

    def run(self, code: str) -> CellResult:
        started = time.monotonic()
        restarted, self._killed = self._killed, False
        before = self._files()
        fresh = self._proc is None or self._proc.poll() is not None
        proc = self._ensure_started()
        request = {"code": code, "timeout": self.limits.seconds, "cpu": self.limits.cpu_seconds}
        reply = self._exchange(proc, json.dumps(request) + "\n", _START_SECONDS if fresh else 0.0)
        if not isinstance(reply, dict):  # no answer in time, or the process died: kill, restart next time
            self._kill()
            why = {
                "timeout": f"timed out after {self.limits.seconds:g} s and was killed",
                "eof": "the interpreter died (it exited, or hit the memory or CPU limit)",
            }
            result = CellResult(stopped=why.get(reply, "the interpreter answered garbage"), restarted=True)
        else:
            result = CellResult(
                output=reply.get("output", ""),
                value=reply.get("value"),
                error=reply.get("error"),
                stopped=reply.get("stopped"),
                restarted=restarted,
            )
        used = self._scratch_bytes()
        if used > self.limits.scratch_mb << 20:
            self._kill()
            self._wipe_scratch()
            result.stopped = (
                f"the scratch directory grew to {used >> 20} MB (at most {self.limits.scratch_mb} MB): "
                "its files were deleted"
            )
            result.restarted = True
        else:
            after = self._files()
            result.files = sorted(p for p, stamp in after.items() if before.get(p) != stamp)
        result.seconds = time.monotonic() - started
        return result

    def close(self) -> None:
        self._kill()
        self._killed = False
        if self._own_scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> PythonSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the child --

    def _ensure_started(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        lim = self.limits
        config = {
            "memory": lim.memory_mb << 20,
            "file_size": lim.file_mb << 20,
            "processes": lim.processes,
            "open_files": lim.open_files,
            "cpu_total": lim.session_cpu_seconds,
            "output_chars": lim.output_chars,
            "read": _readable_paths(),
            "seccomp": _PROCESS_SYSCALLS.get(platform.machine()),
            "write": [str(self.scratch), os.devnull],
        }
        if self._seed_cache:
            _seed_matplotlib_cache(self.scratch / ".matplotlib")
        env = child_env(
            self.scratch,
            MPLCONFIGDIR=str(self.scratch / ".matplotlib"),
            MPLBACKEND="Agg",
            OPENBLAS_NUM_THREADS="1",
            OMP_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
            TZ="UTC",
        )
        cmd = [*netns_prefix(), sys.executable, "-I", "-c", _WORKER, json.dumps(config)]
        self._proc = subprocess.Popen(
            cmd,
            cwd=self.scratch,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self._proc

    def _exchange(self, proc: subprocess.Popen[bytes], line: str, start: float) -> dict | str:
        """Send one request; the reply, or why there is none: "timeout", "eof" or "garbage" (a reply too
        large or not JSON: the code wrote on the interpreter's channel)."""
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(line.encode("utf-8"))
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return "eof"
        deadline = time.monotonic() + self.limits.seconds + _GRACE + start
        cap = 8 * self.limits.output_chars + 65536
        buf = b""
        fd = proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return "timeout"
                chunk = os.read(fd, 65536)
                if not chunk:
                    return "eof"
                buf += chunk
                if len(buf) > cap:
                    return "garbage"
        try:
            reply = json.loads(buf.split(b"\n", 1)[0])
        except ValueError:
            return "garbage"
        return reply if isinstance(reply, dict) else "garbage"

    def _kill(self) -> None:
        if self._proc is not None:
            kill_group(self._proc)
            for f in (self._proc.stdin, self._proc.stdout):
                if f is not None:
                    f.close()
            self._proc = None
            self._killed = True

    # -- the scratch directory --

    def _files(self) -> dict[Path, tuple[int, int]]:
        out = {}
        for root, dirs, files in os.walk(self.scratch):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                p = Path(root, name)
                try:
                    st = p.lstat()
                except OSError:
                    continue
                if p.is_file() and not p.is_symlink():
                    out[p] = (st.st_mtime_ns, st.st_size)
        return out

    def _scratch_bytes(self) -> int:
        total = 0
        for root, _, files in os.walk(self.scratch):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(root, name)).st_size
        return total

    def _wipe_scratch(self) -> None:
        for p in self.scratch.iterdir():
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


_GRACE = 2.0
"""Seconds past the time limit before the parent kills an interpreter that did not stop itself."""
_START_SECONDS = 5.0
"""Allowance for interpreter start-up on a busy machine (only a call that starts it waits for it)."""


def _seed_matplotlib_cache(dest: Path) -> None:
    """Copy matplotlib's font list into a new scratch directory, so `import matplotlib.pyplot` in the
    sandbox does not rebuild it (seconds) on every run. The list is made once per user, by a sandbox that
    runs only our own import."""
    if importlib.util.find_spec("matplotlib") is None:
        return
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llmworks" / "sandbox-mpl"
    if not any(cache.glob("fontlist-*.json")):
        warm = PythonSandbox(limits=Limits(seconds=60, cpu_seconds=60))
        warm._seed_cache = False
        with warm:
            warm.run("import matplotlib.font_manager")
            for f in (warm.scratch / ".matplotlib").glob("fontlist-*.json"):
                cache.mkdir(parents=True, exist_ok=True)
                part = cache / f".{f.name}.{os.getpid()}.part"
                shutil.copyfile(f, part)
                os.replace(part, cache / f.name)
    dest.mkdir(exist_ok=True)
    for f in cache.glob("fontlist-*.json"):
        shutil.copyfile(f, dest / f.name)


_PROCESS_SYSCALLS = {
    # clone, fork, vfork, execve, execveat, clone3 (threads too: they are clones)
    "x86_64": {"arch": 0xC000003E, "syscalls": [56, 57, 58, 59, 322, 435]},
    "aarch64": {"arch": 0xC00000B7, "syscalls": [220, 221, 281, 435]},
}
"""Seccomp: the syscalls that start a process or a program, per machine (elsewhere only the rlimit)."""


@functools.cache
def _readable_paths() -> list[str]:
    """What the interpreter may read: its Python installation (stdlib, site-packages: numpy, matplotlib)
    and the system's shared libraries. Nothing else: not /etc, /home, /proc, /root or the project."""
    paths = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths |= {p for p in sys.path if p and Path(p).is_dir() and "site-packages" in p}
    paths |= {"/usr/lib", "/usr/lib64", "/lib", "/lib64", "/etc/ld.so.cache", "/dev/urandom", "/dev/zero"}
    return sorted(p for p in paths if os.path.exists(p))


# The interpreter. It reads one JSON request per line on a private copy of stdin and answers one JSON line
# on a private copy of stdout; fds 0-2 are /dev/null, and print() goes to a capped buffer.
_WORKER = r"""
import ast, ctypes, io, json, linecache, os, resource, signal, sys, traceback

cfg = json.loads(sys.argv[1])
control_in = os.fdopen(os.dup(0), "r", encoding="utf-8")
control_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
os.close(null)


def limit(name, soft, hard=None):
    try:
        resource.setrlimit(getattr(resource, name), (soft, soft if hard is None else hard))
    except (AttributeError, ValueError, OSError):
        pass


limit("RLIMIT_AS", cfg["memory"])
limit("RLIMIT_FSIZE", cfg["file_size"])
limit("RLIMIT_CORE", 0)
limit("RLIMIT_NPROC", cfg["processes"])
limit("RLIMIT_NOFILE", cfg["open_files"])
limit("RLIMIT_CPU", cfg["cpu_total"], cfg["cpu_total"])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file too large is an OSError, not a dead interpreter


def landlock(read, write):
    libc = ctypes.CDLL(None, use_errno=True)
    call = libc.syscall
    call.restype = ctypes.c_long
    abi = call(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        return
    EXEC, WRITE, READ, READ_DIR = 1, 2, 4, 8
    fs = (1 << 13) - 1
    fs |= (1 << 13 if abi >= 2 else 0) | (1 << 14 if abi >= 3 else 0) | (1 << 15 if abi >= 5 else 0)
    file_rights = EXEC | WRITE | READ | (1 << 14 if abi >= 3 else 0) | (1 << 15 if abi >= 5 else 0)

    class Ruleset(ctypes.Structure):
        _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]

    class Beneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed", ctypes.c_uint64), ("fd", ctypes.c_int32)]

    attr = Ruleset(fs, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0)  # net: bind+connect TCP; scoped: unix+signal
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = call(444, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")

    def allow(path, rights):
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            return
        if not os.path.isdir(path):
            rights &= file_rights
        rule = Beneath(rights & fs, fd)
        ok = call(445, ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.byref(rule), ctypes.c_uint32(0))
        os.close(fd)
        if ok != 0:
            raise OSError(ctypes.get_errno(), "landlock_add_rule failed for " + path)

    for path in read:
        allow(path, READ | READ_DIR)
    for path in write:
        allow(path, fs & ~EXEC)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if call(446, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    os.close(ruleset)


def no_new_processes(numbers, arch):
    # A seccomp filter: the syscalls in `numbers` fail with EPERM; another ABI is killed, x32 refused.
    libc = ctypes.CDLL(None, use_errno=True)

    class Insn(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Insn))]

    LD, JEQ, JGE, RET = 0x20, 0x15, 0x35, 0x06
    ALLOW, EPERM, KILL = 0x7FFF0000, 0x00050000 | 1, 0x80000000
    n = len(numbers)
    insns = [Insn(LD, 0, 0, 4), Insn(JEQ, 1, 0, arch), Insn(RET, 0, 0, KILL), Insn(LD, 0, 0, 0)]
    insns.append(Insn(JGE, n + 1, 0, 0x40000000))  # x32 syscalls on x86-64: refused
    insns += [Insn(JEQ, n - i, 0, nr) for i, nr in enumerate(numbers)]
    insns += [Insn(RET, 0, 0, ALLOW), Insn(RET, 0, 0, EPERM)]
    array = (Insn * len(insns))(*insns)
    prog = Prog(len(insns), array)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        raise OSError(ctypes.get_errno(), "seccomp filter refused")


landlock(cfg["read"], cfg["write"])
if cfg["processes"] == 0 and cfg["seccomp"]:
    no_new_processes(cfg["seccomp"]["syscalls"], cfg["seccomp"]["arch"])


class Stop(BaseException):
    pass


class TimedOut(Stop):
    pass


class CpuLimit(Stop):
    pass


class OutputLimit(Stop):
    pass


def on_alarm(signum, frame):
    raise TimedOut


def on_cpu(signum, frame):
    raise CpuLimit


signal.signal(signal.SIGALRM, on_alarm)
signal.signal(signal.SIGXCPU, on_cpu)
CAP = cfg["output_chars"]


class Capped(io.TextIOBase):
    def __init__(self):
        self.parts, self.n, self.over = [], 0, False

    def writable(self):
        return True

    def write(self, s):
        if self.n + len(s) > CAP:
            self.parts.append(s[: max(0, CAP - self.n)])
            self.n, self.over = CAP, True
            raise OutputLimit
        self.parts.append(s)
        self.n += len(s)
        return len(s)


def error_text(e, source):
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == "<cell>"]
    lines = ["Traceback (most recent call last):"] if frames else []
    lines += [s.rstrip("\n") for s in traceback.format_list(frames)]
    lines += [s.rstrip("\n") for s in traceback.format_exception_only(type(e), e)]
    return "\n".join(lines)[-4000:]


def save_figures():
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    for num in plt.get_fignums():
        name = "figure-%d.png" % num
        n = 1
        while os.path.exists(name):
            n += 1
            name = "figure-%d-%d.png" % (num, n)
        plt.figure(num).savefig(name, dpi=100)
    plt.close("all")


namespace = {"__name__": "__main__", "__builtins__": __builtins__}
while True:
    line = control_in.readline()
    if not line:
        os._exit(0)
    req = json.loads(line)
    code = req["code"]
    out = Capped()
    reply = {"output": "", "value": None, "error": None, "stopped": None}
    sys.stdout = sys.stderr = out
    sys.stdin = io.StringIO()
    try:
        try:
            ru = resource.getrusage(resource.RUSAGE_SELF)
            soft = min(cfg["cpu_total"], int(ru.ru_utime + ru.ru_stime) + 1 + int(req["cpu"]))
            limit("RLIMIT_CPU", soft, cfg["cpu_total"])
            linecache.cache["<cell>"] = (len(code), None, code.splitlines(True), "<cell>")
            tree = ast.parse(code, "<cell>", "exec")
            last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            signal.setitimer(signal.ITIMER_REAL, float(req["timeout"]))
            exec(compile(tree, "<cell>", "exec"), namespace)
            if last is not None:
                value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace)
                if value is not None:
                    reply["value"] = repr(value)[:CAP]
            save_figures()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except TimedOut:
        reply["stopped"] = "timed out after %g s" % req["timeout"]
    except CpuLimit:
        reply["stopped"] = "used more than %s s of CPU time" % req["cpu"]
    except OutputLimit:
        reply["stopped"] = "printed more than %d characters: the rest was cut" % CAP
    except MemoryError:
        reply["stopped"] = "ran out of memory (at most %d MB)" % (cfg["memory"] >> 20)
    except BaseException as e:
        try:
            reply["error"] = error_text(e, code)
        except BaseException:
            reply["error"] = type(e).__name__
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    reply["output"] = "".join(out.parts)
    control_out.write(json.dumps(reply) + "\n")
    control_out.flush()
"""
