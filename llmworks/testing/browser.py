"""Debian's chromium driven by Playwright, the one way browser tests start it (never `playwright install`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmworks.errors import UserError

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


def launch_chromium(playwright: Any) -> Any:
    """A headless browser from a `sync_playwright()` context; a clear error when chromium is missing."""
    if not Path(CHROMIUM).exists():
        raise UserError(
            f"the browser tests need Debian's chromium at {CHROMIUM}, which is not installed.",
            "Install it: sudo apt-get install chromium (`make test` does this when run as root).",
        )
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
