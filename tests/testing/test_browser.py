"""The browser helper without chromium: one clear error naming the package, before Playwright starts."""

import pytest

from llmworks.errors import UserError
from llmworks.testing import browser


def test_missing_chromium_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(browser, "CHROMIUM", str(tmp_path / "no-chromium"))
    with pytest.raises(UserError) as e:
        browser.launch_chromium(object())  # never reached: the check comes first
    assert "need Debian's chromium at" in e.value.problem and "no-chromium" in e.value.problem
    assert "sudo apt-get install chromium" in e.value.fix
