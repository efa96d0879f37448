"""Tools that make files: `chart` (a matplotlib PNG) and `speak` (a WAV, with espeak-ng)."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import threading
from pathlib import Path

from llmworks.agent.tools.base import Tool, ToolError, ToolResult
from llmworks.agent.tools.calculator import evaluate
from llmworks.errors import UserError

__all__ = ["Chart", "Speak"]

MAX_POINTS = 10_000
_PLOT_LOCK = threading.Lock()  # pyplot's state is global: one chart at a time per process


class Chart(Tool):
    name = "chart"
    description = (
        "Draw a chart as a PNG: give y values (and optionally x values), or an expression in x with a "
        "range, e.g. expression 'x**2', x_min 1, x_max 10."
    )
    parameters = {  # noqa: RUF012
        "type": "object",
        "properties": {
            "kind": {"enum": ["line", "bar", "scatter"], "description": "The kind of chart."},
            "title": {"type": "string"},
            "y": {"type": "array", "items": {"type": "number"}, "description": "The values to draw."},
            "x": {"type": "array", "items": {"type": "number"}, "description": "Their x positions."},
            "expression": {"type": "string", "description": "y as an expression in x, e.g. 'x**2'."},
            "x_min": {"type": "number"},
            "x_max": {"type": "number"},
        },
        "required": ["kind"],
    }

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self._n = itertools.count(1)

    def __call__(  # type: ignore[override]
        self,
        kind: str,
        title: str = "",
        y: list[float] | None = None,
        x: list[float] | None = None,
        expression: str | None = None,
        x_min: float | None = None,
        x_max: float | None = None,
    ) -> ToolResult:
        xs, ys = _points(y, x, expression, x_min, x_max)
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self._next_path()
        with _PLOT_LOCK:
            fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
            try:
                {"line": ax.plot, "bar": ax.bar, "scatter": ax.scatter}[kind](xs, ys)
                ax.set_title(title or (f"y = {expression}" if expression else ""))
                ax.grid(True, alpha=0.3)
                fig.savefig(path, format="png")
            finally:
                plt.close(fig)
        shown = ", ".join(f"({_num(a)}, {_num(b)})" for a, b in list(zip(xs, ys, strict=True))[:12])
        more = f" and {len(xs) - 12} more" if len(xs) > 12 else ""
        return ToolResult(
            f"Drew a {kind} chart of {len(xs)} points: {shown}{more}. Saved {path.name}.", [path]
        )

    def _next_path(self) -> Path:
        while True:
            path = self.out_dir / f"chart-{next(self._n)}.png"
            if not path.exists():
                return path


def _points(
    y: list[float] | None,
    x: list[float] | None,
    expression: str | None,
    x_min: float | None,
    x_max: float | None,
) -> tuple[list[float], list[float]]:
    if expression:
        lo, hi = (1 if x_min is None else x_min), (10 if x_max is None else x_max)
        if hi < lo:
            raise ToolError("x_max is smaller than x_min.")
        step = (
            1 if (hi - lo) <= 200 and float(lo).is_integer() and float(hi).is_integer() else (hi - lo) / 200
        )
        xs = [lo + i * step for i in range(int((hi - lo) / step) + 1)][:MAX_POINTS]
        return xs, [float(evaluate(expression, {"x": float(v)})) for v in xs]
    if not y:
        raise ToolError("give y values, or an expression in x.")
    if len(y) > MAX_POINTS:
        raise ToolError(f"at most {MAX_POINTS} points.")
    xs = list(x) if x else list(range(1, len(y) + 1))
    if len(xs) != len(y):
        raise ToolError(f"x has {len(xs)} values but y has {len(y)}.")
    return [float(v) for v in xs], [float(v) for v in y]


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.4g}"


class Speak(Tool):
    name = "speak"
    description = "Say a text aloud: writes it as speech to a WAV file."
    parameters = {  # noqa: RUF012
        "type": "object",
        "properties": {
            "text": {"type": "string", "description": "What to say."},
            "voice": {"type": "string", "description": "An espeak-ng voice, e.g. en, en-us, fr, de."},
        },
        "required": ["text"],
    }
    MAX_CHARS = 2000

    def __init__(self, out_dir: Path) -> None:
        self.espeak = shutil.which("espeak-ng")
        if self.espeak is None:
            raise UserError(
                "the speak tool needs espeak-ng, which is not installed.",
                "Install it: sudo apt-get install espeak-ng (`make test` does it when run as root).",
            )
        self.out_dir = Path(out_dir)
        self._n = itertools.count(1)

    def __call__(self, text: str, voice: str = "en") -> ToolResult:  # type: ignore[override]
        if not text.strip():
            raise ToolError("there is no text to say.")
        if len(text) > self.MAX_CHARS:
            raise ToolError(f"at most {self.MAX_CHARS} characters at a time.")
        if not voice.replace("-", "").isalnum():
            raise ToolError(f"unknown voice {voice!r}.")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"speech-{next(self._n)}.wav"
        while path.exists():
            path = self.out_dir / f"speech-{next(self._n)}.wav"
        # The text is one argument after `--`, never a shell string or an option.
        done = subprocess.run(
            [self.espeak, "-v", voice, "-w", str(path), "--", text],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )
        if done.returncode != 0 or not path.exists():
            raise ToolError(f"espeak-ng failed: {(done.stderr or done.stdout).strip()[:200]}")
        seconds = _wav_seconds(path)
        return ToolResult(f"Said {len(text.split())} words ({seconds:.1f} s of audio): {path.name}.", [path])


def _wav_seconds(path: Path) -> float:
    import wave

    try:
        with wave.open(str(path)) as w:
            return w.getnframes() / float(w.getframerate() or 1)
    except (wave.Error, EOFError):
        return 0.0
