"""`remember` / `recall`: an agent's long-term memory, a small vector store on disk (one per agent).

Recall ranks memories as Generative Agents does (Park et al., 2023): the sum of recency (0.995 per hour
since the memory was last recalled), importance (1-10, given when it was stored) and relevance (cosine
similarity of embeddings), each scaled to 0..1 over the candidates. Embeddings come from the agent's
client (`client.embed`: the embedded sentence-transformers model in process, or /v1/embeddings).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llmworks.agent.tools.base import Tool, ToolError

if TYPE_CHECKING:
    import numpy as np
from llmworks.atomic import atomic_write

__all__ = ["MemoryStore", "Recall", "Remember"]

Embed = Callable[[Sequence[str]], list[list[float]]]
DECAY_PER_HOUR = 0.995


@dataclass
class Memory:
    text: str
    importance: int
    created: float
    accessed: float
    vector: list[float]


class MemoryStore:
    """Memories of one agent in `path` (JSONL); safe to share between the threads of one process."""

    def __init__(self, path: Path, embed: Embed, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.embed = embed
        self.clock = clock
        self._lock = threading.Lock()
        self.memories: list[Memory] = []
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    self.memories.append(Memory(**json.loads(line)))

    def add(self, text: str, importance: int = 5) -> Memory:
        vector = self.embed([text])[0]
        now = self.clock()
        m = Memory(text, max(1, min(10, int(importance))), now, now, [float(v) for v in vector])
        with self._lock:
            self.memories.append(m)
            self._save()
        return m

    def search(self, query: str, k: int = 3) -> list[tuple[float, Memory]]:
        """The k best memories for `query` by recency + importance + relevance, most relevant first; the
        ones returned count as accessed now."""
        import numpy as np  # here, so the CLI starts without it

        with self._lock:
            if not self.memories:
                return []
            q = np.asarray(self.embed([query])[0], dtype=np.float32)
            vecs = np.asarray([m.vector for m in self.memories], dtype=np.float32)
            relevance = vecs @ q / (np.linalg.norm(vecs, axis=1) * np.linalg.norm(q) + 1e-9)
            now = self.clock()
            hours = np.asarray([(now - m.accessed) / 3600 for m in self.memories])
            recency = DECAY_PER_HOUR ** np.maximum(hours, 0)
            importance = np.asarray([m.importance for m in self.memories], dtype=np.float64)
            score = _scaled(recency) + _scaled(importance) + _scaled(relevance)
            best = np.argsort(-score, kind="stable")[:k]
            for i in best:
                self.memories[i].accessed = now
            self._save()
            return [(float(score[i]), self.memories[i]) for i in best]

    def _save(self) -> None:
        atomic_write(self.path, "".join(json.dumps(asdict(m)) + "\n" for m in self.memories))


def _scaled(x: np.ndarray) -> np.ndarray:
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    span = x.max() - x.min()
    return (x - x.min()) / span if span > 1e-12 else np.ones_like(x)


class Remember(Tool):
    name = "remember"
    description = "Store a fact in long-term memory, to recall it in later conversations."
    parameters = {  # noqa: RUF012
        "type": "object",
        "properties": {
            "text": {"type": "string", "description": "The fact to remember, as a full sentence."},
            "importance": {
                "type": "integer",
                "minimum": 1,
                "maximum": 10,
                "description": "1 trivial .. 10 vital.",
            },
        },
        "required": ["text"],
    }

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def __call__(self, text: str, importance: int = 5) -> str:  # type: ignore[override]
        if not text.strip():
            raise ToolError("there is nothing to remember.")
        self.store.add(text.strip(), importance)
        return f"Remembered: {text.strip()}"


class Recall(Tool):
    name = "recall"
    description = "Recall facts from long-term memory that are relevant to a query."
    parameters = {  # noqa: RUF012
        "type": "object",
        "properties": {"query": {"type": "string", "description": "What to recall."}},
        "required": ["query"],
    }

    def __init__(self, store: MemoryStore, k: int = 3) -> None:
        self.store = store
        self.k = k

    def __call__(self, query: str) -> str:  # type: ignore[override]
        found = self.store.search(query, self.k)
        if not found:
            return "Nothing is remembered yet."
        return "\n".join(f"- {m.text}" for _, m in found)
