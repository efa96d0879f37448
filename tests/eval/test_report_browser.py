"""The run report in headless chromium: the per-sample browser lists, filters and shows samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmworks.eval import EvalConfig, evaluate
from llmworks.testing.browser import launch_chromium

pytestmark = pytest.mark.slow


def test_sample_browser(tiny_gguf: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    run = evaluate(
        EvalConfig(
            tasks=["mmlu-smoke", "custom-smoke"],
            model=str(tiny_gguf),
            output_dir=str(tmp_path),
            limit=3,
            ctx=1024,
        )
    )
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((run / "report.html").as_uri())
        assert page.locator("table tr").count() == 3  # header + two tasks
        assert page.locator("svg.chart").count() >= 1
        assert page.locator("#list li").count() == 3
        page.click("#list li >> nth=1")
        detail = page.inner_text("#detail")
        assert "request 1 (loglikelihood)" in detail and "The following are multiple choice" in detail
        page.select_option("#task", "custom-smoke")
        assert page.locator("#list li").count() == 3
        page.click("#list li >> nth=0")
        assert "What is the capital of France?" in page.inner_text("#detail")
        page.check("#wrong")  # the tiny random model gets nothing right
        assert page.locator("#list li.bad").count() == page.locator("#list li").count()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert not errors, errors
