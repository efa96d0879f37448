"""`kb_search`: search the agent's knowledge bases; the chunks come back numbered, with their sources."""

from __future__ import annotations

from collections.abc import Sequence

from llmworks.agent.knowledge import Hit, KnowledgeBase, cite, hit_fields
from llmworks.agent.tools.base import Tool, ToolError
from llmworks.errors import UserError

__all__ = ["KBSearch", "format_hits", "search_all"]


class KBSearch(Tool):
    name = "kb_search"
    parameters = {  # noqa: RUF012
        "type": "object",
        "properties": {"query": {"type": "string", "description": "What to look up, in a few words."}},
        "required": ["query"],
    }

    def __init__(self, kbs: Sequence[KnowledgeBase], k: int = 3, max_chars: int = 600) -> None:
        if not kbs:
            raise UserError(
                "the kb_search tool needs a knowledge base.", "List one in the agent config: kbs: [docs/]."
            )
        self.kbs = list(kbs)
        self.k = k
        self.max_chars = max_chars
        self.description = "Search the documents (" + ", ".join(kb.name for kb in self.kbs) + ") for a query."

    def __call__(self, query: str) -> str:  # type: ignore[override]
        if not query.strip():
            raise ToolError("the query is empty.")
        hits = search_all(self.kbs, query, self.k)
        if not hits:
            return f"No document matches {query!r}."
        return format_hits(hits, self.max_chars)


def search_all(kbs: Sequence[KnowledgeBase], query: str, k: int) -> list[Hit]:
    """The best k hits over several knowledge bases."""
    hits = [hit_fields(h) for kb in kbs for h in kb.search(query, k)]
    return sorted(hits, key=lambda h: -h.score)[:k]


def format_hits(hits: Sequence[Hit], max_chars: int = 600) -> str:
    parts = []
    for i, h in enumerate(hits, 1):
        text = " ".join(h.text.split())
        if len(text) > max_chars:
            text = text[:max_chars].rsplit(" ", 1)[0] + " …"
        parts.append(f"[{i}] ({cite(h)}) {text}")
    return "\n".join(parts)
