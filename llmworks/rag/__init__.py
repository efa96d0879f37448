"""RAG: knowledge bases over your documents — ingest, hybrid retrieval, cited answers, refusal, eval.

    from llmworks.rag import KnowledgeBase
    kb = KnowledgeBase("manual")
    kb.ingest(["docs/"])
    hits = kb.search("how do I decode DER?", k=5)   # Hit: text, source, page, heading, score, scores
    answer = kb.ask("How do I decode DER?")         # Answer: text with [n] citations, sources, refused

Names load on first use, so `llmworks --help` does not import the retrieval stack.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Answer", "Hit", "KnowledgeBase", "list_knowledge_bases", "search"]


def __getattr__(name: str) -> Any:
    if name in ("KnowledgeBase", "list_knowledge_bases", "search"):
        from llmworks.rag import kb

        return getattr(kb, name)
    if name == "Hit":
        from llmworks.rag.retrieve import Hit

        return Hit
    if name == "Answer":
        from llmworks.rag.answer import Answer

        return Answer
    raise AttributeError(f"module 'llmworks.rag' has no attribute {name!r}")
