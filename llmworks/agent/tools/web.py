"""`http_get`: fetch a web page as text, from allow-listed hosts only (off unless the config lists hosts).

The host is checked before any connection, and again on every redirect; proxies and the environment are
ignored, the body is capped, HTML is reduced to its text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import unescape
from urllib.parse import urljoin, urlsplit

from llmworks.agent.tools.base import Tool, ToolError
from llmworks.errors import UserError

__all__ = ["HttpGet", "host_allowed"]

MAX_BYTES = 500_000
MAX_REDIRECTS = 3


def host_allowed(url: str, allowed: Sequence[str]) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        return False
    for entry in allowed:
        entry = entry.lower().strip()
        name, _, port = entry.partition(":")
        if port and str(parts.port or (443 if parts.scheme == "https" else 80)) != port:
            continue
        if host == name or (name.startswith("*.") and host.endswith(name[1:])):
            return True
    return False


class HttpGet(Tool):
    name = "http_get"
    parameters = {  # noqa: RUF012
        "type": "object",
        "properties": {"url": {"type": "string", "description": "An http(s) URL on an allowed host."}},
        "required": ["url"],
    }

    def __init__(self, allowed_hosts: Sequence[str], timeout: float = 10.0) -> None:
        if not allowed_hosts:
            raise UserError(
                "the http_get tool is off until the config lists the hosts it may reach.",
                "Add them to the agent config: http_allow: [docs.python.org].",
            )
        self.allowed = [h.strip() for h in allowed_hosts if h.strip()]
        self.timeout = timeout
        self.description = "Fetch a web page as text. Allowed hosts: " + ", ".join(self.allowed) + "."

    def __call__(self, url: str) -> str:  # type: ignore[override]
        import httpx

        with httpx.Client(timeout=self.timeout, follow_redirects=False, trust_env=False) as client:
            for _ in range(MAX_REDIRECTS + 1):
                if not host_allowed(url, self.allowed):
                    raise ToolError(f"{url} is not on an allowed host ({', '.join(self.allowed)}).")
                try:
                    with client.stream("GET", url, headers={"User-Agent": "llmworks-agent"}) as r:
                        if r.is_redirect and "location" in r.headers:
                            url = urljoin(url, r.headers["location"])
                            continue
                        body = b""
                        for chunk in r.iter_bytes():
                            body += chunk
                            if len(body) > MAX_BYTES:
                                break
                        kind = r.headers.get("content-type", "")
                        status = r.status_code
                except httpx.HTTPError as e:
                    raise ToolError(f"could not fetch {url}: {type(e).__name__}: {e}") from None
                text = body[:MAX_BYTES].decode("utf-8", errors="replace")
                if "html" in kind or text.lstrip()[:15].lower().startswith(("<!doctype", "<html")):
                    text = html_text(text)
                if status >= 400:
                    raise ToolError(f"{url} answered HTTP {status}: {text[:300]}")
                return text
        raise ToolError(f"{url}: more than {MAX_REDIRECTS} redirects.")


def html_text(html: str) -> str:
    html = re.sub(r"(?is)<(script|style|noscript)\b.*?</\1>", " ", html)
    html = re.sub(r"(?i)<br\s*/?>|</(p|div|h[1-6]|li|tr)>", "\n", html)
    text = unescape(re.sub(r"<[^>]+>", " ", html))
    return "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())
