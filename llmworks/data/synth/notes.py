"""Trailing notes on tool descriptions. Tool schemas in the wild end in remarks that say nothing of what the
tool is for: the language it is written in, the result's format, a rate limit. A model trained only on bare
descriptions reads such a note as a sign the tool is for something else: BFCL appends "Note that the provided
function is in Python 3 syntax." to every description: of 40 simple requests recipe v4's model declined, it
called the tool for 17 once the note was taken off.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import random

NOTES = [
    "Note that this function is implemented in Python.",
    "Written in Python 3; arguments use Python types.",
    "Note that the tool is a Python 3 function.",
    "Results are returned as JSON.",
    "Note that results may be up to a day old.",
    "Rate limited to 60 requests per minute.",
    "String values are case-sensitive.",
    "Returns an error if nothing matches.",
    "Note that this tool is read-only.",
    "Requires an API key, set on the server.",
    "Note that optional parameters take their documented defaults when omitted.",
    "Part of the v2 API.",
]
NOTED_SHARE = 0.5
"""Records whose tools all carry one note (BFCL's carry one note on every tool); the rest are bare."""


def with_note(tools: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """`tools` (OpenAI format), each description ending in the same note, a share of the time."""
    if rng.random() >= NOTED_SHARE:
        return tools
    note = rng.choice(NOTES)
    noted = copy.deepcopy(tools)
    for t in noted:
        fn = t["function"]
        fn["description"] = f"{fn['description'].rstrip()} {note}".strip()
    return noted
