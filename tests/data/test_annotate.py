import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from data_testing import read_jsonl, write_jsonl

from llmworks.data.annotate.server import create_app
from llmworks.testing.browser import launch_chromium
from llmworks.testing.server import serving

RECORDS = [
    {"prompt": "Name a primary color.", "responses": ["Blue.", "Potato.", "Red is one."]},
    {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello thre!"}]},
    {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
    "{broken",
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    src = write_jsonl(tmp_path / "items.jsonl", RECORDS)
    out = tmp_path / "ann"
    with serving(create_app(src, out)) as url:
        yield url + "/", out


def _call(url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_api_validates_and_writes_as_it_goes(server: tuple[str, Path]) -> None:
    url, out = server
    assert _call(url + "api/info")[1]["count"] == 4
    assert _call(url + "api/items/3")[1]["kind"] == "invalid"
    assert _call(url + "api/items/9")[0] == 404
    code, body = _call(url + "api/items/0/rank", {"ranking": [0, 0, 1]})
    assert code == 400 and "order all 3" in body["detail"]
    code, body = _call(url + "api/items/1/edit", {"messages": [{"role": "user", "content": "Hi"}]})
    assert code == 400 and "last turn" in body["detail"]
    assert _call(url + "api/items/2/rank", {"ranking": [1, 0]})[1]["pairs"] == 1
    pref = read_jsonl(out / "preferences.jsonl")
    assert pref == [
        {
            "index": 2,
            "prompt": [{"role": "user", "content": "2+2?"}],
            "chosen": [{"role": "assistant", "content": "5"}],
            "rejected": [{"role": "assistant", "content": "4"}],
        }
    ]


def test_browser_ranks_and_edits(server: tuple[str, Path], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, out = server
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page()
        page.goto(url)
        expect(page.locator("#prompt")).to_contain_text("Name a primary color.")
        for j, rank in enumerate(["2", "3", "1"]):  # C best, then A, then B
            page.select_option(f"#rank-{j}", rank)
        page.click("#save-rank")
        expect(page.locator("#status")).to_have_text("saved (3 preference pairs)")
        pairs = [
            (r["chosen"][0]["content"], r["rejected"][0]["content"])
            for r in read_jsonl(out / "preferences.jsonl")
        ]
        assert pairs == [("Red is one.", "Blue."), ("Red is one.", "Potato."), ("Blue.", "Potato.")]

        page.click("#next")
        expect(page.locator("#pos")).to_have_text("2 / 4")
        page.fill("#msg-1", "Hello there!")
        page.click("#save-edit")
        expect(page.locator("#status")).to_have_text("saved")
        assert read_jsonl(out / "edited.jsonl")[0]["messages"][1]["content"] == "Hello there!"

        page.reload()  # state survives a reload: it is read back from the server
        expect(page.locator("#msg-1")).to_have_value("Hello there!")
        page.click("#prev")
        expect(page.locator("#rank-2")).to_have_value("1")
        page.screenshot(path=str(tmp_path / "annotate.png"), full_page=True)
        browser.close()
    assert (tmp_path / "annotate.png").stat().st_size > 1000


def test_resume_reads_earlier_outputs(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "items.jsonl", RECORDS)
    app = create_app(src, tmp_path / "ann")
    app.state.store.save_ranking(0, [2, 0, 1])
    again = create_app(src, tmp_path / "ann").state.store
    assert (
        again.item(0)["ranking"] == [2, 0, 1] and len(read_jsonl(tmp_path / "ann" / "preferences.jsonl")) == 3
    )
