"""Answers: retrieval, the refusal decision, a grounded prompt with numbered sources, and the streamed reply
with citations that map to source, page and heading.

A citation number that names no source is dropped and counted. A sentence the model left uncited is
attributed to the source that supports it (most of its content words appear there), when one does; so a
model that does not cite (the embedded 135M one rarely does) still yields answers whose claims point to a
page. A follow-up question is rewritten into a standalone query before retrieval. The model is any
`llmworks.client` client: the embedded one, `llmworks serve`, or any OpenAI-compatible server.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmworks.rag.bm25 import tokenize
from llmworks.rag.config import AskConfig, ModelOptions
from llmworks.rag.refusal import RefusalModel
from llmworks.rag.rerank import make_reranker, relevance_prompt
from llmworks.rag.retrieve import Hit, Retrieval, retrieve

if TYPE_CHECKING:
    from llmworks.client import Client
    from llmworks.rag.kb import KnowledgeBase

__all__ = [
    "Answer",
    "AnswerEvent",
    "CitationFilter",
    "Source",
    "ask",
    "ask_stream",
    "grounded_messages",
    "lazy_client",
]

SYSTEM = (
    "You are a helpful assistant. Answer the question only from the numbered sources, in a few sentences. "
    "Cite the sources you use by their numbers in square brackets, like [1] or [2]. If the sources do not "
    "contain the answer, say that you don't know."
)
SOURCE_CHARS = 600
"""Characters of each source the model reads (the embedded model's attention is short)."""
HISTORY_TURNS = 4
"""Earlier messages kept in the prompt of a follow-up."""
SUPPORT = 0.5
"""A sentence is attributed to a source holding at least this share of its content words."""


@dataclass
class Source:
    n: int
    hit: Hit
    cited: bool = False
    attributed: bool = False
    """Cited by attribution (the model did not cite it itself)."""

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "where": self.hit.where, "cited": self.cited, **self.hit.to_json()}


@dataclass
class Answer:
    question: str
    query: str
    """What was searched (the standalone rewrite of a follow-up)."""
    text: str
    sources: list[Source]
    refused: bool = False
    p_out_of_scope: float = 0.0
    dropped_citations: int = 0
    """Citation numbers the model wrote that named no source."""
    attributed: int = 0
    """Sentences cited by attribution."""
    unsupported: int = 0
    """Sentences no source supports (a cheap faithfulness signal; the judge in `rag eval` is the real one)."""
    sentences: int = 0
    signals: dict[str, float] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def cited(self) -> list[Source]:
        return [s for s in self.sources if s.cited]

    def references(self) -> str:
        """`[1] file p.N › heading` lines of the cited sources."""
        return "\n".join(f"[{s.n}] {s.hit.where}" for s in self.cited)

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "query": self.query,
            "answer": self.text,
            "refused": self.refused,
            "p_out_of_scope": round(self.p_out_of_scope, 4),
            "dropped_citations": self.dropped_citations,
            "attributed": self.attributed,
            "unsupported": self.unsupported,
            "sentences": self.sentences,
            "signals": {k: round(v, 4) for k, v in self.signals.items()},
            "sources": [s.to_json() for s in self.sources],
        }


@dataclass
class AnswerEvent:
    text: str = ""
    answer: Answer | None = None
    """Set on the last event."""


def ask(
    kbs: Sequence[KnowledgeBase],
    question: str,
    history: Sequence[dict[str, Any]] = (),
    client: Client | None = None,
    **options: Any,
) -> Answer:
    """The whole answer at once (see `ask_stream`)."""
    cfg = AskConfig(**options)
    with lazy_client(cfg, client) as model:
        for ev in ask_stream(kbs, question, history, cfg, model):
            if ev.answer is not None:
                return ev.answer
    raise AssertionError("ask_stream ended without an answer")


def ask_stream(
    kbs: Sequence[KnowledgeBase],
    question: str,
    history: Sequence[dict[str, Any]],
    cfg: AskConfig,
    client: Callable[[], Client],
    allowed: Sequence[str] | None = None,
    retrieval: Retrieval | None = None,
) -> Iterator[AnswerEvent]:
    """Rewrite (follow-ups), retrieve, decide, answer: text events, then one event with the `Answer`.
    `client()` gives the model (called only when one is needed); `allowed`: the knowledge bases the
    caller may read."""
    query = rewrite(question, history, cfg.rewrite, client) if history else question
    if retrieval is None:
        reranker = make_reranker(cfg.rerank, client)
        retrieval = retrieve(kbs, query, cfg.search_options(), reranker, allowed)
    hits = retrieval.hits
    signals = dict(retrieval.signals)
    model = RefusalModel.load(kbs[0].paths.refusal)
    refused, p_out = False, 0.0
    if cfg.refuse:
        if (cfg.relevance_check or model.needs_relevance) and hits:
            signals["relevance"] = relevance(client(), query, hits[0].text)
        refused, p_out = model.decide(signals)
        refused = refused or not hits
    sources = [Source(n, h) for n, h in enumerate(hits, 1)]
    base = Answer(question, query, "", sources, refused, p_out, signals=signals)
    if refused:
        base.text = cfg.refusal
        yield AnswerEvent(cfg.refusal)
        yield AnswerEvent(answer=base)
        return
    messages = grounded_messages(question, hits, history, cfg.system)
    stream = client().chat_stream(messages, max_tokens=cfg.max_tokens, temperature=cfg.temperature)
    cite = CitationFilter(sources, attribute=True)
    parts: list[str] = []
    for chunk in stream:
        if chunk.usage is not None:
            base.prompt_tokens, base.completion_tokens = (
                chunk.usage.prompt_tokens,
                chunk.usage.completion_tokens,
            )
        text = cite.feed(chunk.content)
        if text:
            text, done = _paragraphs(parts, text, cfg.paragraphs)
            if text:
                parts.append(text)
                yield AnswerEvent(text)
            if done:
                cite.looping = True
        if cite.looping:
            break
    rest = "" if cite.looping else _paragraphs(parts, cite.finish(), cfg.paragraphs)[0]
    if rest:
        parts.append(rest)
        yield AnswerEvent(rest)
    base.text = "".join(parts).strip()
    base.dropped_citations, base.attributed = cite.dropped, cite.attributed
    base.unsupported, base.sentences = cite.unsupported, cite.sentences
    yield AnswerEvent(answer=base)


def _paragraphs(parts: list[str], text: str, limit: int) -> tuple[str, bool]:
    """`text` up to where the answer's `limit`-th paragraph ends (0: no limit), and whether it ended."""
    if not limit:
        return text, False
    so_far = "".join(parts).lstrip()
    joined = so_far + (text if so_far else text.lstrip())
    ends = [i for i in range(len(joined)) if joined.startswith("\n\n", i) and joined[:i].strip()]
    if len(ends) < limit:
        return text, False
    keep = ends[limit - 1] - len(so_far)
    return (text if so_far else text.lstrip())[: max(0, keep)], True


def grounded_messages(
    question: str, hits: Sequence[Hit], history: Sequence[dict[str, Any]] = (), system: str | None = None
) -> list[dict[str, Any]]:
    """The grounded prompt: instructions, earlier turns, then the numbered sources and the question."""
    sources = "\n\n".join(f"[{n}] {_label(h)}{h.text[:SOURCE_CHARS]}" for n, h in enumerate(hits, 1))
    turns = [
        {"role": m["role"], "content": m.get("content") or ""}
        for m in history
        if m.get("role") in ("user", "assistant")
    ][-HISTORY_TURNS:]
    return [
        {"role": "system", "content": system or SYSTEM},
        *turns,
        {"role": "user", "content": f"Sources:\n\n{sources}\n\nQuestion: {question}"},
    ]


def _label(h: Hit) -> str:
    """A source's own section title, in front of its text (small models follow a titled passage better)."""
    leaf = h.heading.split(" > ")[-1].strip() if h.heading else ""
    return f"{leaf}: " if leaf else ""


def rewrite(question: str, history: Sequence[dict[str, Any]], how: str, client: Callable[[], Client]) -> str:
    """A follow-up as a standalone query: by the model, or joined to the previous question."""
    previous = [m.get("content") or "" for m in history if m.get("role") == "user"]
    if how == "off" or not previous:
        return question
    joined = f"{previous[-1]} {question}"
    if how == "concat":
        return joined
    convo = "\n".join(
        f"{m['role'].capitalize()}: {(m.get('content') or '')[:300]}"
        for m in history[-HISTORY_TURNS:]
        if m.get("role") in ("user", "assistant")
    )
    prompt = (
        "Rewrite the last question so that it can be understood without the conversation. Reply with the "
        f"rewritten question only.\n\nConversation:\n{convo}\n\nLast question: {question}\nRewritten question:"
    )
    reply = client().chat([{"role": "user", "content": prompt}], max_tokens=48, temperature=0.0).content or ""
    line = reply.strip().splitlines()[0].strip().strip('"') if reply.strip() else ""
    # A rewrite must still be a question about the same things: keep it only if it is short and shares
    # words with the conversation; otherwise the joined questions are the safer query.
    words = set(tokenize(line))
    if line and len(line) <= 3 * len(joined) and words & set(tokenize(joined)):
        return line
    return joined


def relevance(client: Client, query: str, text: str) -> float:
    """log P(" yes") − log P(" no") that `text` answers `query` (0 when the model cannot score)."""
    lp = client.loglikelihood(
        [(relevance_prompt(query, text), " yes"), (relevance_prompt(query, text), " no")]
    )
    return float(lp[0] - lp[1]) if lp else 0.0


_CITATION = re.compile(r"\s?\[(?:sources?\s*:?\s*)?(\d+(?:\s*[,;]\s*\d+)*)\]", re.I)
_OPEN_TAIL = re.compile(r"\s?\[[^\]\n]{0,16}$")
_STUTTER = re.compile(r"(.{1,8}?)\1{5,}")
"""A unit of up to 8 characters repeated 6 times in a row."""
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]”’]*(?=\s)|[。！？]+[”’」』）]*|\n")
"""Where a streamed sentence is known to have ended (a period needs the next character: "v1.2" goes on)."""


class CitationFilter:
    """Streams reply text sentence by sentence: citation markers rewritten to the valid ones ([n] for
    n in 1..len(sources); an invalid number is dropped and counted), an uncited sentence given the
    citation of the source that supports it (`attribute`), and a sentence the model repeats stops it."""

    def __init__(self, sources: Sequence[Source], attribute: bool = True) -> None:
        self.sources = list(sources)
        self.attribute = attribute
        self._buf = ""
        self._seen: dict[str, int] = {}
        self.dropped = 0
        self.attributed = 0
        self.unsupported = 0
        self.sentences = 0
        self.looping = False
        self._terms = [set(tokenize(f"{s.hit.heading} {s.hit.text}")) for s in self.sources]

    def feed(self, text: str) -> str:
        self._buf += text
        out = []
        stuck = _STUTTER.search(self._buf)
        if stuck:  # "c:c:c:c:c..." inside a sentence: the model is stuck, keep what came before
            self._buf = self._buf[: stuck.start() + len(stuck.group(1))]
            self.looping = True
            return self._sentence(self._buf) if self._buf.strip() else ""
        while not self.looping:
            m = _SENTENCE_END.search(self._buf)
            if not m:
                break  # no complete sentence yet
            out.append(self._sentence(self._buf[: m.end()]))
            self._buf = self._buf[m.end() :]
        return "".join(out)

    def finish(self) -> str:
        rest, self._buf = self._buf, ""
        if _OPEN_TAIL.search(rest):  # a cut-off "[1" at the very end
            rest = _OPEN_TAIL.sub("", rest)
        return self._sentence(rest) if rest.strip() and not self.looping else ""

    def _sentence(self, s: str) -> str:
        key = " ".join(tokenize(s)) or re.sub(r"\d+", "#", " ".join(s.lower().split()))
        if key:
            self._seen[key] = self._seen.get(key, 0) + 1
            if self._seen[key] > (1 if len(key) > 12 else 2):
                self.looping = True  # the model repeats itself: stop here
                return ""
        cited: list[int] = []

        def keep(m: re.Match[str]) -> str:
            nums = [int(x) for x in re.split(r"\s*[,;]\s*", m.group(1))]
            valid = [n for n in nums if 1 <= n <= len(self.sources)]
            self.dropped += len(nums) - len(valid)
            cited.extend(valid)
            if not valid:
                return ""
            lead = " " if m.group().startswith((" ", "\t")) else ""
            return lead + "".join(f"[{n}]" for n in dict.fromkeys(valid))

        s = _CITATION.sub(keep, s)
        words = tokenize(s)
        if len(words) >= 3:
            self.sentences += 1
        for n in cited:
            self.sources[n - 1].cited = True
        if cited or len(words) < 3:
            return s
        best = self._support(set(words))
        if best is None:
            self.unsupported += 1
            return s
        if self.attribute:
            src = self.sources[best]
            src.cited = True
            src.attributed = True
            self.attributed += 1
            core = s.rstrip()
            tail = s[len(core) :]
            end = re.search(r"[.!?。！？]+$", core)
            cut = end.start() if end else len(core)
            return f"{core[:cut]} [{src.n}]{core[cut:]}{tail}"
        return s

    def _support(self, words: set[str]) -> int | None:
        best, best_share = None, 0.0
        for i, terms in enumerate(self._terms):
            share = len(words & terms) / len(words)
            if share > best_share:
                best, best_share = i, share
        return best if best_share >= SUPPORT else None


class LazyClient:
    """The answering model, loaded on first use (a refusal needs none); `close()` frees it."""

    def __init__(self, cfg: ModelOptions, client: Client | None = None) -> None:
        self.cfg = cfg
        self._client = client
        self._owned = client is None

    def __call__(self) -> Client:
        if self._client is None:
            from llmworks.client import make_client

            c = self.cfg
            self._client = (
                make_client(c.model, c.base_url, c.api_key)
                if c.base_url
                else make_client(c.model, n_ctx=c.ctx)
            )
        return self._client

    def close(self) -> None:
        if self._owned and self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> LazyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def lazy_client(cfg: ModelOptions, client: Client | None = None) -> LazyClient:
    return LazyClient(cfg, client)
