"""The HTML pieces every eval page shares (run report, comparison, arena): the page frame, colours, numbers."""

from __future__ import annotations

import html

COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f")

CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:14px}
th{background:#f3f3f3}.meta{color:#666}.warn{background:#fdecea;color:#8a1c12;padding:4px 8px}.up{color:#2a7d2a}.down{color:#c0392b;font-weight:bold}
.charts{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}.legend span{margin-right:12px;font-size:13px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
.split{display:flex;gap:16px}#list{width:220px;max-height:600px;overflow:auto;font-size:13px}
#list li{cursor:pointer;padding:2px}#list li.bad{color:#c0392b}#list li.sel{background:#e8eefc}
#detail{flex:1;min-width:0}pre{white-space:pre-wrap;background:#f7f7f7;padding:8px;max-height:320px;overflow:auto}
"""


def page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body>{body}</body></html>"
    )


def num(v: float | None) -> str:
    return "" if v is None else f"{v:.3f}"
