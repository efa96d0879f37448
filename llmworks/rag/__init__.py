"""RAG: knowledge bases over your documents (see llmworks.rag.kb)."""
