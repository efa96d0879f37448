"""Knowledge bases served as models: `llmworks serve --kb manual --kb faq` adds `rag:manual` and `rag:faq`
(`--kb docs=manual+faq`: `rag:docs` over both) next to the plain models, answered by the first served model.

The reply is the cited answer; the response's `llmworks` field (and the stream's last chunk) carries
`{"sources": [{"n", "where", "source", "page", "heading", "text", "cited", "score", "scores", "kb"}, ...],
"rag": {"query", "refused", "p_out_of_scope", "dropped_citations"}}`.

Access control (`--rag-access access.yaml`): API keys mapped to what they may use,

    keys:
      sk-support: [faq]                      # knowledge bases (and the rag: models over them)
      sk-staff: [manual, faq, smollm2-135m-instruct]   # ... and a plain model
      sk-admin: "*"                          # everything

A key limited to some knowledge bases sees only the rag: models that include one of them, and a request
never gets a chunk of a knowledge base its key may not read: the store's filter names only the readable ones.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from llmworks.client import Client
from llmworks.client.base import GenOptions
from llmworks.config import read_yaml_mapping
from llmworks.errors import UserError
from llmworks.rag.answer import ask_stream
from llmworks.rag.config import AskConfig
from llmworks.rag.kb import KnowledgeBase
from llmworks.serve.apps import AppContext, AppEvent, ChatApp
from llmworks.serve.config import parse_kb_spec

__all__ = ["RagApp", "access_keys", "load_rag_apps", "parse_kb_spec"]

KB_PREFIX = "kb:"
"""Entries of a key's allowed set that name a readable knowledge base."""


class RagApp(ChatApp):
    owned_by = "llmworks-rag"

    def __init__(self, name: str, kbs: Sequence[KnowledgeBase], client: Client, cfg: AskConfig) -> None:
        self.name = f"rag:{name}"
        self.kbs = list(kbs)
        self.client = client
        self.cfg = cfg
        self.description = f"answers from knowledge base(s) {', '.join(kb.name for kb in kbs)} with citations"

    def chat_stream(
        self, messages: list[dict[str, Any]], options: GenOptions, context: AppContext
    ) -> Iterator[AppEvent]:
        users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
        if not users:
            raise UserError(
                "a rag: model needs a user message to answer.", "Send the question as a user message."
            )
        last = users[-1]
        question = _text(messages[last].get("content"))
        history = [{"role": m["role"], "content": _text(m.get("content"))} for m in messages[:last]]
        readable = [kb.name for kb in self.kbs if context.may_use(KB_PREFIX + kb.name)]
        cfg = self.cfg.model_copy(
            update={"max_tokens": options.max_tokens, "temperature": options.temperature}
        )
        for ev in ask_stream(self.kbs, question, history, cfg, lambda: self.client, allowed=readable):
            if context.cancelled:
                return
            if ev.text:
                yield AppEvent(text=ev.text)
            if ev.answer is not None:
                a = ev.answer
                yield AppEvent(
                    data={
                        "sources": [s.to_json() for s in a.sources],
                        "rag": {
                            "query": a.query,
                            "refused": a.refused,
                            "p_out_of_scope": round(a.p_out_of_scope, 4),
                            "dropped_citations": a.dropped_citations,
                        },
                    },
                    finish_reason="stop",
                    prompt_tokens=a.prompt_tokens,
                    completion_tokens=a.completion_tokens,
                )


def load_rag_apps(
    specs: Sequence[str], kb_dir: str | None, client: Client, cfg: AskConfig | None = None
) -> dict[str, RagApp]:
    """One app per spec; every knowledge base is checked now (a missing one lists those that exist)."""
    opened: dict[str, KnowledgeBase] = {}
    apps: dict[str, RagApp] = {}
    for spec in specs:
        alias, names = parse_kb_spec(spec)
        for n in names:
            if n not in opened:
                kb = KnowledgeBase(n, kb_dir)
                kb.meta  # noqa: B018 - fail now, with the list of knowledge bases, not on the first request
                opened[n] = kb
        app = RagApp(alias, [opened[n] for n in names], client, cfg or AskConfig())
        apps[app.name] = app
    return apps


def access_keys(
    path: str | Path, models: Sequence[str], apps: Mapping[str, RagApp]
) -> dict[str, frozenset[str] | None]:
    """API key -> the names it may use (models, apps, `kb:NAME`), from the access file."""
    data = read_yaml_mapping(Path(path))
    keys = data.get("keys")
    if not isinstance(keys, dict) or not keys:
        raise UserError(f"{path} has no `keys:` mapping.", "Write keys: {KEY: [KB or model names] or '*'}.")
    kbs = {kb.name for app in apps.values() for kb in app.kbs}
    known = {*models, *apps, *kbs}
    out: dict[str, frozenset[str] | None] = {}
    problems = []
    for key, allowed in keys.items():
        if allowed == "*":
            out[str(key)] = None
            continue
        names = [allowed] if isinstance(allowed, str) else allowed
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            problems.append(f"{key}: give a list of names or '*'")
            continue
        unknown = [n for n in names if n not in known]
        if unknown:
            problems.append(f"{key}: unknown {', '.join(unknown)}")
            continue
        grant: set[str] = set()
        for n in names:
            if n in kbs:
                grant.add(KB_PREFIX + n)
                grant |= {a for a, app in apps.items() if n in {kb.name for kb in app.kbs}}
            else:
                grant.add(n)
                if n in apps:  # a rag: model named outright may read all its knowledge bases
                    grant |= {KB_PREFIX + kb.name for kb in apps[n].kbs}
        out[str(key)] = frozenset(grant)
    if problems:
        raise UserError(
            f"bad access file {path}: {'; '.join(problems)}.",
            f"Names: {', '.join(sorted(known))}, or '*' for everything.",
        )
    return out


def _text(content: Any) -> str:
    """A message's text (OpenAI content parts joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""
