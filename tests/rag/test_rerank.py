"""Rerankers: a local cross-encoder directory (a tiny random one built here: the code path, not its quality)
and the model as relevance judge (log-likelihood of yes vs no; chat yes/no where the model cannot score)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from llmworks.errors import UserError
from llmworks.rag.rerank import CrossEncoderReranker, LLMReranker, make_reranker
from llmworks.rag.retrieve import Hit
from llmworks.testing.fake_client import ScriptedClient


class Scorer(ScriptedClient):
    """log P(" yes") is high when the passage shares a word with the question."""

    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        out = []
        for context, continuation in pairs:
            passage = context.split("Passage:\n", 1)[1].split("\n\nQuestion:", 1)[0].lower()
            question = context.split("Question: ", 1)[1].split("\n", 1)[0].lower()
            shared = any(w in passage for w in question.split() if len(w) > 3)
            out.append(-0.1 if (continuation == " yes") == shared else -3.0)
        return out


def hits() -> list[Hit]:
    return [
        Hit(t, f"/d/{i}.md", None, "", 1.0, id=str(i))
        for i, t in enumerate(["cats purr", "widgets hum", "dogs bark"])
    ]


def test_llm_reranker_by_loglikelihood_and_by_chat() -> None:
    ranked = LLMReranker(Scorer([""])).rerank("why do widgets hum", hits())
    assert ranked[0].text == "widgets hum" and ranked[0].scores["rerank"] == pytest.approx(2.9)
    chat = ScriptedClient(["No.", "Yes, it does.", "no"])  # loglikelihood() is None: asks in chat
    ranked = LLMReranker(chat).rerank("why do widgets hum", hits())
    assert ranked[0].text == "widgets hum" and len(chat.calls) == 3


def test_cross_encoder_directory(tmp_path: Path) -> None:
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    from llmworks.engines.embedder import embedding_model_dir

    tok = BertTokenizerFast.from_pretrained(str(embedding_model_dir(None)))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, num_labels=1)  # fmt: skip
    BertForSequenceClassification(cfg).save_pretrained(tmp_path / "ce")
    tok.save_pretrained(tmp_path / "ce")
    reranker = make_reranker(str(tmp_path / "ce"))
    assert isinstance(reranker, CrossEncoderReranker)
    ranked = reranker.rerank("why do widgets hum", hits())
    assert len(ranked) == 3 and all("rerank" in h.scores for h in ranked)
    assert [h.score for h in ranked] == sorted((h.score for h in ranked), reverse=True)
    with pytest.raises(UserError, match="not a local cross-encoder"):
        make_reranker(str(tmp_path))
    assert make_reranker(None) is None and make_reranker("none") is None
