"""A planner agent served as a model (`loop: planner`), asked from the web chat in headless chromium: the
page draws the graph when it is planned and repaints each node as it starts and ends.

On the tiny random model (fast): whatever it plans (a schema-valid graph, or one node when the plan is not
a usable graph), every node must stream through running to done and the answer must finish."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmworks.testing.browser import launch_chromium
from llmworks.testing.server import start_server, stop_server

pytestmark = pytest.mark.slow

TIMEOUT_MS = 240_000  # 2 shared cores


@pytest.fixture
def server(tiny_gguf: Path, tmp_path: Path) -> Iterator[str]:
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "encoders.md").write_text(
        "# Brisk\n\nBrisk encodes at 410 MB/s.\n\n# Dense\n\nDense encodes at 95 MB/s.\n"
    )
    cfg = tmp_path / "planner.yaml"
    cfg.write_text("name: searcher\nloop: planner\nkbs: [kb/]\nmax_nodes: 3\n")
    s = start_server(
        [str(tiny_gguf), "--agent", str(cfg), "--parallel", "3", "--ctx", "2048"], tmp_path / "server.log"
    )
    yield s.base
    stop_server(s)


def test_the_web_chat_draws_the_planner_graph_live(server: str) -> None:
    from playwright.sync_api import sync_playwright

    assert "agent:searcher" in [m["id"] for m in httpx.get(server + "/v1/models").json()["data"]]
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(server + "/")
            page.wait_for_selector("#model option[value='agent:searcher']", state="attached")
            page.select_option("#model", "agent:searcher")
            # Record every class a node card had before each repaint (the last one is on the page).
            page.evaluate(
                """() => { window.seen = [];
                new MutationObserver((ms) => { for (const m of ms) if (m.target.dataset?.node)
                  window.seen.push(m.target.dataset.node + ":" + m.oldValue);
                }).observe(document.body, { subtree: true, attributes: true, attributeOldValue: true,
                                             attributeFilter: ["class"] }); }"""
            )
            page.fill("#prompt", "How fast are Brisk and Dense?")
            page.click("#send")
            page.wait_for_selector(".msg.assistant .meta")
            cards = page.locator(".msg.assistant .graph .node")
            n = cards.count()
            assert 1 <= n <= 3
            seen: list[str] = page.evaluate("window.seen")
            for i in range(1, n + 1):
                states = [s.split(":")[1] for s in seen if s.startswith(f"{i}:")]
                states.append(page.get_attribute(f'.graph .node[data-node="{i}"]', "class") or "")
                assert states[0] == "node waiting" and "node running" in states and states[-1] == "node done"
                assert states.index("node running") < states.index("node done")
            assert all(c.endswith(" s") for c in cards.locator(".node-head").all_inner_texts())
            assert page.locator(".msg.assistant .body").inner_text().strip()
            assert not errors, errors
        finally:
            browser.close()
