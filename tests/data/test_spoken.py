"""Values a request says in words while the call keeps the schema's format (dates, currency codes)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from llmworks.data.synth.spoken import forms
from llmworks.data.synth.tool_calls import SynthReport, call_problem, read_tool_file, synth_tool_calls

BOOK = """
- type: function
  function:
    name: book_table
    description: "Book a restaurant table."
    parameters:
      type: object
      properties:
        day: {type: string, format: date, description: "The date in YYYY-MM-DD format."}
        guests: {type: integer}
        currency: {type: string, description: "ISO 4217 code of the deposit's currency."}
      required: [day, guests, currency]
  requests:
    - "A table for {guests} on {day}, deposit in {currency}."
  values:
    day: ["2025-10-15", "2026-03-01"]
    guests: [2, 4]
    currency: [USD, GBP]
"""


def test_a_date_and_a_code_said_in_words_keep_their_format_in_the_call(tmp_path: Path) -> None:
    path = tmp_path / "tools.yaml"
    path.write_text(BOOK)
    (spec,) = read_tool_file(path)
    records = list(synth_tool_calls([spec], 40, None, SynthReport(), seed=0, kinds=["single"]))
    requests = [r["messages"][0]["content"] for r in records]
    assert any(re.search(r"(October|March) \d", q) for q in requests)  # in words half the time
    assert any("British pounds" in q or "US dollars" in q for q in requests)
    assert any("2025-10-15" in q or "2026-03-01" in q for q in requests)  # as is, the other half
    for r in records:
        args = json.loads(r["messages"][1]["tool_calls"][0]["function"]["arguments"])
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", args["day"]) and args["currency"] in ("USD", "GBP")


def test_words_for_a_value_do_not_excuse_the_requests_other_numbers(tmp_path: Path) -> None:
    path = tmp_path / "tools.yaml"
    path.write_text(BOOK)
    (spec,) = read_tool_file(path)
    args = {"day": "2025-10-15", "guests": 4, "currency": "USD"}
    assert (
        call_problem(spec, args, "A table for 4 on the 15th of October 2025, deposit in US dollars.") is None
    )
    assert call_problem(spec, args, "A table for 4 on the 16th of October 2025, in US dollars.") is not None
    assert call_problem(spec, args, "A table for 4 at 8 on October 15, 2025, in US dollars.") is not None
    assert call_problem(spec, args, "A table for 4 on October 15, 2025, in euros.") is not None
    assert forms({"type": "string"}, "note", "2025-10-15") == []  # a date only where the schema says so
    assert forms({"format": "date"}, "day", "2025-02-30") == []
