"""Debian's chromium driven by Playwright, the one way browser tests start it (never `playwright install`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from llmworks.errors import UserError

CHROMIUM = os.environ.get("LLMWORKS_CHROMIUM", "/usr/bin/chromium")
"""Debian's chromium; $LLMWORKS_CHROMIUM points elsewhere (another distribution's path)."""
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
            "Install it: sudo apt-get install chromium (`make test` does this when run as root), "
            "or set LLMWORKS_CHROMIUM to its path.",
        )
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
