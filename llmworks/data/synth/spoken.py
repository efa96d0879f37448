"""How a request says a value that its call writes in the schema's format: "March 14, 2025" for a date the
schema wants as YYYY-MM-DD, "British pounds" for an ISO 4217 code. Requests that only ever state the exact
argument teach a model to copy; BFCL's requests say "from 200 US dollars" and "15th October 2023" and its
checker wants USD and 2023-10-15 (61 of the recipe v3 model's 400 simple answers failed on string values).
"""

from __future__ import annotations

import datetime
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import random

CURRENCIES = {
    "USD": ["US dollars", "U.S. dollars"],
    "EUR": ["euros"],
    "GBP": ["British pounds", "pounds sterling"],
    "JPY": ["Japanese yen"],
    "CAD": ["Canadian dollars"],
    "CHF": ["Swiss francs"],
    "INR": ["Indian rupees"],
    "AUD": ["Australian dollars"],
    "CNY": ["Chinese yuan"],
    "MXN": ["Mexican pesos"],
    "KRW": ["South Korean won"],
    "BRL": ["Brazilian reais"],
    "SEK": ["Swedish kronor"],
}
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def forms(schema: Any, key: str, value: Any) -> list[str]:
    """The ways a request may say `value` besides writing it out, for the property `key` with `schema`."""
    if not isinstance(value, str) or not isinstance(schema, dict):
        return []
    about = f"{key} {schema.get('description', '')}".casefold()
    if (schema.get("format") == "date" or "yyyy-mm-dd" in about) and _ISO_DATE.fullmatch(value):
        try:
            d = datetime.date.fromisoformat(value)
        except ValueError:
            return []
        month, day = d.strftime("%B"), _ordinal(d.day)
        return [
            f"{month} {d.day}, {d.year}",
            f"{d.day} {month} {d.year}",
            f"{month} {day}, {d.year}",
            f"the {day} of {month} {d.year}",
        ]
    if ("currency" in about or "iso 4217" in about) and value in CURRENCIES:
        return CURRENCIES[value]
    return []


def say(schema: Any, key: str, value: Any, rng: random.Random) -> str | None:
    """How one request says `value`: in other words half the time when it has them, else None (as is)."""
    other = forms(schema, key, value)
    return rng.choice(other) if other and rng.random() < 0.5 else None


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
