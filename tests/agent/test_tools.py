"""The Tool seam and the built-in tools (real files, real subprocesses, a real loopback HTTP server)."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
import wave
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from llmworks.agent import ToolResult, tool
from llmworks.agent.knowledge import FolderKB, open_kb
from llmworks.agent.tools import BUILTIN, ToolContext, build_tools, run_tool
from llmworks.agent.tools.calculator import Calculator
from llmworks.agent.tools.defined import DefinedTool
from llmworks.agent.tools.files import ReadFile
from llmworks.agent.tools.kb import KBSearch
from llmworks.agent.tools.media import Chart, Speak
from llmworks.agent.tools.memory import MemoryStore, Recall, Remember
from llmworks.agent.tools.python import PythonTool, clean_code
from llmworks.agent.tools.web import HttpGet, host_allowed
from llmworks.errors import UserError

MANUAL = Path(__file__).parents[2] / "configs" / "agents" / "manual"


@tool
def convert(
    amount: float, unit: Literal["km", "mi"], precise: bool = False, tags: list[str] | None = None
) -> str:
    """Convert a distance.

    Args:
        amount: How far.
        unit: The unit to convert from.
        precise: Keep all digits.
        tags: Labels to attach.
    """
    km = amount if unit == "km" else amount * 1.609344
    return f"{km if precise else round(km, 1)} km"


def test_tool_decorator_derives_the_schema_from_the_signature_and_docstring() -> None:
    assert convert.name == "convert" and convert.description == "Convert a distance."
    assert convert.parameters == {
        "type": "object",
        "properties": {
            "amount": {"type": "number", "description": "How far."},
            "unit": {"enum": ["km", "mi"], "description": "The unit to convert from."},
            "precise": {"type": "boolean", "description": "Keep all digits.", "default": False},
            "tags": {"type": "array", "items": {"type": "string"}, "description": "Labels to attach."},
        },
        "required": ["amount", "unit"],
    }
    assert convert.spec()["function"]["name"] == "convert"
    assert run_tool(convert, '{"amount": 2, "unit": "mi"}').text == "3.2 km"


def test_bad_arguments_and_tool_failures_are_observations() -> None:
    r = run_tool(convert, '{"amount": "far", "unit": "mi"}')
    assert r.error and "bad arguments for convert" in r.text and "amount" in r.text
    assert "not valid JSON" in run_tool(convert, "{amount: 2").text
    assert "'unit' is a required property" in run_tool(convert, {"amount": 1}).text

    @tool
    def broken(x: int) -> str:
        """Always fails.

        Args:
            x: Anything.
        """
        raise KeyError("boom")

    r = run_tool(broken, {"x": 1})
    assert r.error and "broken failed: KeyError" in r.text


def test_tool_definitions_are_checked() -> None:
    def untyped(x):  # type: ignore[no-untyped-def]
        """Has no hints."""

    with pytest.raises(UserError, match="has no type hint"):
        tool(untyped)
    with pytest.raises(UserError, match="not valid JSON Schema"):
        DefinedTool(
            {
                "name": "t",
                "description": "d",
                "parameters": {"type": "object", "properties": 3},
                "python": "1",
            }
        )
    with pytest.raises(UserError, match="type: object"):
        DefinedTool({"name": "t", "description": "d", "parameters": {"type": "string"}, "python": "1"})
    with pytest.raises(UserError, match="unknown key 'code'"):
        DefinedTool({"name": "t", "description": "d", "code": "1", "python": "1"})
    with pytest.raises(UserError, match="unknown tool 'shell'"):
        build_tools(["shell"], ToolContext(Path(".")))


def test_calculator_is_exact_and_refuses_code() -> None:
    calc = Calculator()
    assert calc("0.1 + 0.2") == "0.3"
    assert calc("17% of 2,340") == "397.8" and calc("17 % 2340") == "397.8" and calc("17 mod 5") == "2"
    assert (
        calc("2^10") == "1024"
        and calc("1/3") == "0.333333333333 (= 1/3)"
        and calc("sqrt(2)").startswith("1.41421")
    )
    # the embedded model's call for "What is 17% of 2340?": an equation with its own (wrong) result
    assert calc("17% of 2340 = 0.17 * 2340 = 32.125") == "397.8"
    for bad in ("__import__('os').system('ls')", "().__class__", "open('x')", "10**10**10"):
        r = run_tool(calc, {"expression": bad})
        assert r.error, bad
    assert "division by zero" in run_tool(calc, {"expression": "1/0"}).text


def test_python_tool_keeps_state_and_strips_fences(tmp_path: Path) -> None:
    py = PythonTool(tmp_path)
    try:
        assert run_tool(py, {"code": "```python\nx = [3, 1, 2]\n```"}).text.startswith("(no output")
        assert run_tool(py, {"code": "sorted(x)"}).text == "[1, 2, 3]"
        r = run_tool(py, {"code": "import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])"})
        assert [p.name for p in r.files] == ["figure-1.png"] and (tmp_path / "figure-1.png").is_file()
    finally:
        py.close()
    assert clean_code("print(1)") == "print(1)"
    # What the embedded model wraps code in: the JSON call's closing brace, a one-line call left open.
    assert clean_code("print(sum([1, 2]))}") == "print(sum([1, 2]))"
    assert clean_code("d = {'a': 1}") == "d = {'a': 1}"
    assert clean_code("print(len('abc')") == "print(len('abc'))"


def test_read_file_stays_inside_its_directories(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "a.txt").write_text("alpha")
    (tmp_path / "secret.txt").write_text("launch code")
    (root / "link").symlink_to(tmp_path / "secret.txt")
    reader = ReadFile([root])
    assert reader("a.txt") == "alpha" and reader(str(root / "a.txt")) == "alpha"
    assert "a.txt" in reader(".")
    for escape in ("../secret.txt", str(tmp_path / "secret.txt"), "link", "/etc/passwd"):
        r = run_tool(reader, {"path": escape})
        assert r.error and "launch code" not in r.text, escape
    with pytest.raises(UserError, match="read_dirs"):
        ReadFile([])


def test_chart_draws_a_png(tmp_path: Path) -> None:
    chart = Chart(tmp_path)
    r = run_tool(chart, {"kind": "line", "expression": "x**2", "x_min": 1, "x_max": 10})
    assert not r.error and "(10, 100)" in r.text and r.files[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = run_tool(chart, {"kind": "bar", "y": [3, 1, 2], "title": "t"})
    assert r.files[0].name == "chart-2.png"
    assert run_tool(chart, {"kind": "line"}).error
    assert run_tool(chart, {"kind": "line", "expression": "__import__('os')"}).error


def test_speak_writes_a_wav(tmp_path: Path) -> None:
    # A missing system package fails here, saying so (make test installs it as root): never a silent skip.
    assert shutil.which("espeak-ng"), "espeak-ng is not installed: sudo apt-get install espeak-ng"
    speak = Speak(tmp_path)
    r = run_tool(speak, {"text": "Hello from the agent."})
    assert not r.error, r.text
    with wave.open(str(r.files[0])) as w:
        assert w.getnframes() > 1000
    assert run_tool(speak, {"text": "--help"}).error is False  # text is never an option
    assert run_tool(speak, {"text": "hi", "voice": "en; rm -rf /"}).error


def test_speak_without_espeak_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="needs espeak-ng") as e:
        Speak(tmp_path)
    assert "apt-get install espeak-ng" in e.value.fix


def test_memory_recalls_by_relevance_recency_and_importance(tmp_path: Path) -> None:
    now = [1_000_000.0]
    store = MemoryStore(tmp_path / "memory.jsonl", bag_of_words, clock=lambda: now[0])
    Remember(store)("The user's cat is called Miso.", importance=8)
    now[0] += 3600 * 24
    Remember(store)("The user likes green tea.", importance=6)
    Remember(store)("The meeting moved to Friday.", importance=5)
    assert Recall(store, k=1)("what is the cat called").startswith("- The user's cat is called Miso")
    again = MemoryStore(tmp_path / "memory.jsonl", bag_of_words)  # on disk: a later conversation
    assert len(again.memories) == 3
    assert Recall(again, k=3)("tea").splitlines()[0] == "- The user likes green tea."


def test_kb_search_cites_its_sources() -> None:
    kb = FolderKB(MANUAL)
    hits = kb.search("default compression level quill pack", k=2)
    assert (
        hits[0].source == "cli.md"
        and hits[0].heading == "quill pack"
        and "default level is 5" in hits[0].text
    )
    # a snake_case query (as small models write them) finds the words it joins
    assert kb.search("license_description", k=1)[0].heading == "Which license does Quill use?"
    text = KBSearch([kb])("error E101")
    assert text.startswith("[1] (troubleshooting.md § Error E101)") and "checksum" in text
    assert isinstance(open_kb("manual", MANUAL.parent), FolderKB)
    with pytest.raises(UserError, match="nope"):
        open_kb("nope")
    with pytest.raises(UserError, match="does not exist"):
        open_kb("./missing", MANUAL.parent)


class _Pages(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/away":
            self.send_response(302)
            self.send_header("Location", "http://localhost:9/elsewhere")
            self.end_headers()
            return
        body = b"<html><body><h1>Quill</h1><script>x()</script><p>Offline &amp; fast.</p></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_get_reaches_allowed_hosts_only(site: str) -> None:
    get = HttpGet([site])
    assert get(f"http://{site}/") == "Quill\nOffline & fast."
    r = run_tool(get, {"url": f"http://{site}/away"})  # a redirect to a host not on the list
    assert r.error and "not on an allowed host" in r.text
    assert run_tool(get, {"url": "http://example.com/"}).error
    assert run_tool(get, {"url": "file:///etc/passwd"}).error
    assert host_allowed("https://docs.python.org/3/", ["docs.python.org"])
    assert host_allowed("https://a.example.org/", ["*.example.org"]) and not host_allowed(
        "https://example.org.evil/", ["*.example.org"]
    )
    with pytest.raises(UserError, match="http_allow"):
        HttpGet([])


def test_every_builtin_builds_from_a_context(tmp_path: Path, site: str) -> None:
    ctx = ToolContext(
        tmp_path,
        kbs=[FolderKB(MANUAL)],
        read_dirs=[MANUAL],
        http_allow=[site],
        memory_path=tmp_path / "m.jsonl",
        embed=bag_of_words,
    )
    tools = build_tools(
        [
            *BUILTIN,
            {
                "name": "double",
                "description": "Double a number.",
                "parameters": {"type": "object", "properties": {"n": {"type": "number"}}, "required": ["n"]},
                "python": "print(args['n'] * 2)",
            },
        ],
        ctx,
    )
    assert [t.name for t in tools] == [*BUILTIN, "double"]
    double = tools[-1]
    assert run_tool(double, {"n": 21}).text == "42"
    for t in tools:
        t.close()
    assert isinstance(run_tool(tools[1], {"expression": "1+1"}), ToolResult)


def bag_of_words(texts: list[str]) -> list[list[float]]:
    """A tiny real embedding for tests: hashed word counts (crc32: Python's str hash changes per process, and
    a collision of "tea" with a word of another memory failed a run)."""
    out = []
    for text in texts:
        v = [0.0] * 256
        for w in json.dumps(text.lower()).replace("'", " ").split():
            v[zlib.crc32(w.strip('.,?"').encode()) % 256] += 1.0
        out.append(v)
    return out
