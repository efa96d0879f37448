"""The agent builder (`llmworks serve --agent-builder`): its API on a real server, the page in headless
chromium (form -> live preview on the embedded model -> saved YAML that `agent run` loads), and schemathesis
on its routes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis

from llmworks.agent.config import load_agent_config
from llmworks.testing.browser import launch_chromium
from llmworks.testing.fuzz import check_answer
from llmworks.testing.server import Server, start_server, stop_server

pytestmark = pytest.mark.slow

TIMEOUT_MS = 240_000  # an agent run is several requests on 2 shared cores
TASK = "What is 17% of 2340?"  # the calculator config's own first suggestion: 397.8


@pytest.fixture(scope="module")
def server(embedded_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(["--agent-builder"], tmp_path_factory.mktemp("builder") / "server.log")
    yield s
    stop_server(s)


def post(server: Server, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.v1 + path, json=body, timeout=300)


def test_options_offer_only_what_a_preview_may_run(server: Server) -> None:
    opts = httpx.get(server.v1 + "/agent-builder/options", timeout=30).json()
    names = {t["name"] for t in opts["tools"]}
    assert {"calculator", "python", "chart"} <= names
    assert not names & {"read_file", "http_get"}
    assert opts["loops"] == ["tools", "react", "plan"] and opts["models"] == ["smollm2-135m-instruct"]


def test_the_saved_yaml_is_the_config_agent_run_loads(server: Server, tmp_path: Path) -> None:
    draft = {"name": "math-helper", "tools": ["calculator"], "max_steps": 3, "suggestions": [TASK]}
    out = post(server, "/agent-builder/yaml", {"agent": draft}).json()
    assert out["filename"] == "math-helper.yaml"
    path = tmp_path / out["filename"]
    path.write_text(out["yaml"])
    cfg = load_agent_config(path)
    assert (cfg.name, cfg.tools, cfg.max_steps, cfg.suggestions) == ("math-helper", ["calculator"], 3, [TASK])


def test_a_bad_or_unsafe_config_is_one_400_naming_every_problem(server: Server) -> None:
    r = post(server, "/agent-builder/yaml", {"agent": {"tools": ["calcx"], "colour": "red"}})
    assert r.status_code == 400
    assert "unknown key 'colour'" in r.text and "unknown tool 'calcx'" in r.text
    unsafe = {"tools": ["read_file"], "read_dirs": ["/"], "kbs": ["nope"], "max_steps": 99}
    r = post(
        server, "/agent-builder/preview", {"agent": unsafe, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    for problem in (
        "read_dirs cannot be set",
        "the read_file tool",
        "no knowledge base 'nope'",
        "max_steps=99",
    ):
        assert problem in message


def test_the_page_builds_previews_and_saves_an_agent(server: Server, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_context(accept_downloads=True).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(server.base + "/builder")
        page.wait_for_selector("body[data-ready='1']")
        page.fill("#name", "math-helper")
        for box in page.query_selector_all("#tools input"):
            box.set_checked(box.get_attribute("value") == "calculator")
        page.fill("#max-steps", "2")
        page.fill("#step-tokens", "96")
        yaml_has = "document.querySelector('#yaml').textContent.includes('name: math-helper') && "
        page.wait_for_function(
            yaml_has + "document.querySelector('#yaml').textContent.includes('max_steps: 2')"
        )
        assert "tools:\n- calculator\n" in page.text_content("#yaml")

        page.fill("#prompt", TASK)
        page.click("#send")
        page.wait_for_selector(".msg.assistant[data-done='1']")
        steps = page.locator(".msg.assistant .step").all_text_contents()
        assert any(s.startswith("call") and "calculator" in s for s in steps), steps
        assert any(s.startswith("observation") and "397.8" in s for s in steps), (
            steps
        )  # the tool's exact value
        assert page.text_content(
            ".msg.assistant .answer"
        ).strip()  # (a 135M model may misquote it: not tested)

        with page.expect_download() as download:
            page.click("#save")
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)
        browser.close()
    assert not errors, errors
    cfg = load_agent_config(saved)
    assert (saved.name, cfg.name, cfg.tools, cfg.max_steps) == (
        "math-helper.yaml",
        "math-helper",
        ["calculator"],
        2,
    )


@pytest.fixture(scope="module")
def small_server(embedded_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # --ctx 128: an agent's prompt does not fit, so a fuzzed config that is valid fails fast (a 400).
    s = start_server(
        ["--agent-builder", "--parallel", "2", "--ctx", "128"], tmp_path_factory.mktemp("fuzz") / "server.log"
    )
    yield s
    stop_server(s)


def test_fuzzed_builder_requests_never_get_a_server_error(small_server: Server) -> None:
    schema = schemathesis.openapi.from_url(small_server.base + "/openapi.json").include(
        path_regex="agent-builder"
    )
    sent: list[str] = []

    @hypothesis.given(case=schema.as_strategy())
    @hypothesis.settings(
        max_examples=30,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    def one(case: Any) -> None:
        response = case.call(timeout=300)
        sent.append(f"{case.method} {case.path} {response.status_code}")
        check_answer(case, response)  # no 5xx, and what /openapi.json documents
        assert httpx.get(small_server.base + "/health", timeout=10).status_code == 200

    one()
    assert {s.split()[1] for s in sent} >= {"/v1/agent-builder/yaml", "/v1/agent-builder/preview"}
