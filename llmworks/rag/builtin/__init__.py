"""Built-in data of the rag stage: a small QA set over this project's own README and docs (the demo's)."""

from __future__ import annotations

from pathlib import Path

README_QA = Path(__file__).parent / "readme_qa.jsonl"
