"""The planner's graph as one self-contained HTML file (inline SVG and CSS; no script, no network)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from html import escape

from llmworks.agent.knowledge import cite
from llmworks.agent.planner import Node, PlanResult

__all__ = ["graph_html"]

W, H, GAP_X, GAP_Y, PAD = 280, 118, 70, 24, 20


def graph_html(result: PlanResult) -> str:
    levels = _levels(result.nodes)
    columns: dict[int, list[Node]] = {}
    for n in result.nodes:
        columns.setdefault(levels[n.id], []).append(n)
    pos = {}
    for col, members in columns.items():
        for row, n in enumerate(members):
            pos[n.id] = (PAD + col * (W + GAP_X), PAD + row * (H + GAP_Y))
    width = PAD * 2 + (max(columns, default=0) + 1) * (W + GAP_X) - GAP_X
    height = PAD * 2 + max((len(m) for m in columns.values()), default=1) * (H + GAP_Y) - GAP_Y
    edges = []
    for n in result.nodes:
        for d in n.depends_on:
            (x1, y1), (x2, y2) = pos[d], pos[n.id]
            a, b = (x1 + W, y1 + H / 2), (x2, y2 + H / 2)
            mid = (a[0] + b[0]) / 2
            edges.append(
                f'<path d="M{a[0]},{a[1]} C{mid},{a[1]} {mid},{b[1]} {b[0]},{b[1]}" class="edge" marker-end="url(#arrow)"/>'
            )
    boxes = [_box(n, *pos[n.id]) for n in result.nodes]
    sources = "".join(f"<li>{escape(cite(h))}</li>" for h in result.sources)
    answer = escape(result.answer.split("\n\nSources:")[0])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>llmworks planner: {escape(result.question)}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; color: #1d2433; margin: 24px; background: #f6f7f9; }}
h1 {{ font-size: 18px; }} .answer {{ background: #fff; border: 1px solid #dde1e6; border-radius: 10px; padding: 12px 16px; max-width: 900px; }}
svg {{ background: #fff; border: 1px solid #dde1e6; border-radius: 10px; }}
.node rect {{ fill: #e8f0fe; stroke: #2f6feb; rx: 8; }} .node.done rect {{ fill: #e7f6ec; stroke: #1f9d55; }}
.q {{ font-weight: 600; font-size: 12.5px; }} .a {{ font-size: 12px; fill: #394150; }} .n {{ font-size: 11px; fill: #6b7385; }}
.edge {{ fill: none; stroke: #8a93a6; stroke-width: 1.5; }}
</style></head><body>
<h1>{escape(result.question)}</h1>
<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="sub-question graph">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">
<path d="M0,0 L10,5 L0,10 z" fill="#8a93a6"/></marker></defs>
{"".join(edges)}
{"".join(boxes)}
</svg>
<h2>Answer</h2><div class="answer"><p>{answer}</p><ol>{sources}</ol></div>
<p class="n">{len(result.nodes)} sub-question{"s" if len(result.nodes) != 1 else ""}, {result.seconds:.1f} s.</p>
</body></html>
"""


def _box(n: Node, x: float, y: float) -> str:
    q = textwrap.wrap(n.question, 42)[:2]
    a = textwrap.wrap(n.answer or "…", 46)[:3]
    lines = [f'<text x="{x + 10}" y="{y + 18}" class="n">#{n.id} · {n.status} · {n.seconds:.1f} s</text>']
    lines += [
        f'<text x="{x + 10}" y="{y + 36 + 15 * i}" class="q">{escape(t)}</text>' for i, t in enumerate(q)
    ]
    lines += [
        f'<text x="{x + 10}" y="{y + 70 + 14 * i}" class="a">{escape(t)}</text>' for i, t in enumerate(a)
    ]
    return (
        f'<g class="node {escape(n.status)}" data-node="{n.id}"><rect x="{x}" y="{y}" width="{W}" height="{H}"/>'
        + "".join(lines)
        + "</g>"
    )


def _levels(nodes: Sequence[Node]) -> dict[int, int]:
    level: dict[int, int] = {}
    for n in nodes:  # dependencies are earlier nodes (parse_graph makes sure)
        level[n.id] = 1 + max((level.get(d, 0) for d in n.depends_on), default=-1)
    return level
