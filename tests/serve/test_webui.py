"""The web chat in headless chromium against a real server running the embedded model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmworks.testing.browser import launch_chromium
from llmworks.testing.golden import capital_question
from llmworks.testing.server import start_server, stop_server

pytestmark = pytest.mark.slow

WEBUI = Path(__file__).resolve().parents[2] / "llmworks" / "serve" / "webui"
QUESTION = capital_question("France")  # answered right with a clear margin (llmworks/testing/golden.py)
TIMEOUT_MS = 120_000  # 2 shared cores: generation can be slow when other work runs


@dataclass
class ChatServer:
    base_url: str  # the OpenAI API root (without /v1)
    page_url: str  # the chat page


@pytest.fixture(scope="module")
def chat_server(embedded_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    """`llmworks serve` on the embedded model: the API and the page at its root, one process."""
    server = start_server([str(embedded_gguf)], tmp_path_factory.mktemp("serve") / "server.log")
    yield ChatServer(server.base, server.base + "/")
    stop_server(server)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture
def page(browser, chat_server: ChatServer):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.set_default_timeout(TIMEOUT_MS)
    pg.goto(chat_server.page_url)
    pg.wait_for_selector("#model option", state="attached")  # models loaded from GET /v1/models
    pg.fill("#max-tokens", "64")
    pg.eval_on_selector("#temperature", "el => { el.value = '0'; el.dispatchEvent(new Event('input')); }")
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _ask(page, text: str) -> dict:  # type: ignore[no-untyped-def]
    """Send `text`, wait for the streamed answer to finish; return the request body the page sent."""
    done = page.locator(".msg.assistant .meta").count()
    page.fill("#prompt", text)
    with page.expect_request(lambda r: r.url.endswith("/v1/chat/completions") and r.method == "POST") as req:
        page.click("#send")
    page.wait_for_function(f"document.querySelectorAll('.msg.assistant .meta').length > {done}")
    assert page.get_attribute("body", "data-state") == "idle"
    return json.loads(req.value.post_data)


def test_chat_streams_answer_and_keeps_history(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    body = _ask(page, QUESTION)
    assert body["stream"] is True and body["temperature"] == 0 and body["max_tokens"] == 64
    assert body["model"] == page.input_value("#model")
    answer = page.locator(".msg.assistant .body").last.inner_text()
    assert "Paris" in answer
    assert page.locator(".msg.user").count() == 1

    body = _ask(page, "And the capital of Italy?")
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant", "user"]
    assert "Paris" in body["messages"][1]["content"]
    assert page.locator(".msg.assistant").count() == 2

    page.evaluate("md => window.llmworksRender(md)", "Here is code:\n\n```python\nprint('hi')\n```")
    page.screenshot(path=str(tmp_path / "webui.png"), full_page=True)
    assert (tmp_path / "webui.png").stat().st_size > 10_000


def test_markdown_rendering_and_no_html_injection(page) -> None:  # type: ignore[no-untyped-def]
    md = (
        "Intro with **bold**, *italic* and `x < 1`.\n\n"
        "```python\ndef f():\n    return '<script>alert(1)</script>'\n```\n\n"
        "- one\n- two\n\n1. first\n2. second\n\n"
        '<img src=x onerror="window.__xss = 1"> [ok](https://example.com) [bad](javascript:alert(1))'
    )
    page.evaluate("md => window.llmworksRender(md)", md)
    msg = page.locator(".msg.assistant").last
    code = msg.locator("pre > code.language-python")
    assert code.inner_text() == "def f():\n    return '<script>alert(1)</script>'"
    assert msg.locator("strong").inner_text() == "bold"
    assert msg.locator("em").inner_text() == "italic"
    assert msg.locator("p code").inner_text() == "x < 1"
    assert msg.locator("ul > li").all_inner_texts() == ["one", "two"]
    assert msg.locator("ol > li").all_inner_texts() == ["first", "second"]
    assert msg.locator("a").count() == 1 and msg.locator("a").get_attribute("href") == "https://example.com"
    assert msg.locator("script, img").count() == 0
    assert page.evaluate("window.__xss") is None
    assert "<img src=x" in msg.inner_text()  # shown as text
    # An open fence (mid-stream) still renders as code.
    html = page.evaluate("md => window.llmworks.renderMarkdown(md)", "```\npartial")
    assert html == "<pre><code>partial</code></pre>"


def test_stop_ends_the_stream_and_new_chat_clears(page) -> None:  # type: ignore[no-untyped-def]
    page.fill("#max-tokens", "1500")
    page.fill("#prompt", "Write a very long story about a dragon who learns to cook. Use many chapters.")
    page.click("#send")
    page.wait_for_function("(document.querySelector('.msg.assistant .body')?.innerText || '').length > 40")
    assert page.get_attribute("body", "data-state") == "streaming"
    assert page.is_enabled("#stop") and page.is_disabled("#send")
    page.click("#stop")
    page.wait_for_selector(".msg.assistant .meta")
    assert "stopped" in page.inner_text(".msg.assistant .meta")
    assert page.get_attribute("body", "data-state") == "idle"
    assert page.is_enabled("#send") and page.is_disabled("#stop")
    text = page.inner_text(".msg.assistant .body")
    page.wait_for_timeout(1000)
    assert page.inner_text(".msg.assistant .body") == text  # nothing arrives after Stop
    assert [m["role"] for m in page.evaluate("window.llmworks.history()")] == ["user", "assistant"]

    # The UI (and the server) still work after a stop. The answer's context holds however much of the story
    # had streamed when Stop was clicked, so only a fresh chat's answer is checked for its content.
    page.fill("#max-tokens", "64")
    body = _ask(page, QUESTION)
    assert len(body["messages"]) == 3
    assert page.locator(".msg.assistant .body").last.inner_text().strip()

    page.click("#new-chat")
    assert page.locator("#messages .msg").count() == 0
    assert page.evaluate("window.llmworks.history()") == []
    body = _ask(page, QUESTION)
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert "Paris" in page.locator(".msg.assistant .body").last.inner_text()

    # New chat in the middle of a stream cuts it and leaves nothing of it behind.
    page.fill("#max-tokens", "1500")
    page.fill("#prompt", "Write a very long story about a dragon who learns to cook.")
    page.click("#send")
    page.wait_for_function(
        "(document.querySelector('.msg.assistant:last-child .body')?.innerText || '').length > 20"
    )
    page.click("#new-chat")
    page.wait_for_selector("body[data-state=idle]")
    assert page.locator("#messages .msg").count() == 0
    assert page.evaluate("window.llmworks.history()") == []


def test_http_error_is_shown_and_api_key_sent(page) -> None:  # type: ignore[no-untyped-def]
    seen: dict[str, str] = {}

    def reject(route, request) -> None:  # type: ignore[no-untyped-def]
        seen.update(request.headers)
        route.fulfill(
            status=401, json={"error": {"message": "Invalid API key", "type": "invalid_request_error"}}
        )

    page.route("**/v1/chat/completions", reject)
    page.fill("#api-key", "sk-test")
    page.dispatch_event("#api-key", "change")
    page.fill("#prompt", "hello")
    page.click("#send")
    page.wait_for_selector("#error.shown")
    error = page.inner_text("#error")
    assert "HTTP 401" in error and "Invalid API key" in error
    assert seen["authorization"] == "Bearer sk-test"
    assert page.evaluate("localStorage.getItem('llmworks.apiKey')") == "sk-test"
    # The failed turn is rolled back and the prompt is kept for a retry.
    assert page.locator("#messages .msg").count() == 0
    assert page.input_value("#prompt") == "hello"
    assert page.evaluate("window.llmworks.history()") == []
    assert page.is_enabled("#send")
