"""The llama.cpp engine (llama-cpp-python's low-level API): GGUF models on the CPU.

One model, one context: the engine owns a `LlamaBatchRunner` with `parallel` sequence slots, driven by a
`BatchScheduler` thread; every token the engine produces or scores goes through them.
"""

from __future__ import annotations

import json
import logging
import os
import weakref
from collections.abc import Sequence
from pathlib import Path

from llmworks.engines.base import DEFAULT_MAX_CTX, Engine
from llmworks.engines.llamacpp_batch import LlamaBatchRunner
from llmworks.engines.scheduler import BatchScheduler, Scheduler
from llmworks.engines.types import Grammar
from llmworks.errors import BadModel, UserError
from llmworks.models.chat_policy import OutputConstraint
from llmworks.models.gguf_meta import diagnose
from llmworks.models.sources import ModelSource
from llmworks.models.template import ChatTemplate

MAX_GRAMMAR_CHARS = 1_000_000
"""Larger grammars (a schema's huge length bounds expand into repeated rules) take seconds and memory to
compile: refused as the client's error."""


_LOOSE_CHAR = r'char ::= [^"\\] |'
_JSON_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] |'


# tool_choice auto: free text, then calls in tags. Text may write "<" but not "<t", the tag's start, so a
# call the model begins is held to the schema; the tags' newlines are optional, as the parser's are.
_TAGGED = r"""root ::= tagged-text tagged-call*
tagged-text ::= ([^<] | "<" [^t<])*
tagged-call ::= "<tool_call>" "\n"? tool-call "\n"? "</tool_call>" "\n"?
"""


def _tagged(gbnf: str) -> str:
    """The call grammar (its `root` renamed `tool-call`) under `_TAGGED`."""
    lines = gbnf.splitlines()
    renamed = [("tool-call" + ln[4:]) if ln.startswith("root ::=") else ln for ln in lines]
    return _TAGGED + "\n".join(renamed) + "\n"


class LlamaCppEngine(Engine):
    def __init__(
        self,
        source: ModelSource,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        parallel: int = 1,
        prefix_cache: bool = True,
        max_queue: int | None = None,
    ) -> None:
        """`n_ctx`: tokens per sequence (default: the model's training context, at most 8192); `parallel`:
        sequences decoded together (the server's --parallel); `prefix_cache`: reuse the KV cells of a
        finished sequence for a new one with the same prefix; `max_queue`: requests that may wait."""
        import llama_cpp as C
        from llama_cpp._internals import LlamaModel

        # llama.cpp's own log (every tensor, every context) goes to its Python logger: errors only.
        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)

        if source.adapter is not None:
            raise UserError(
                f"the llamacpp engine cannot apply the HF adapter {source.adapter}.",
                "Use --engine transformers, or merge the adapter and export a GGUF first.",
            )
        if parallel < 1:
            raise UserError(f"parallel must be >= 1 (got {parallel}).", "")
        self.source = source
        self.name = source.name
        self.max_queue = max_queue
        self.n_threads = n_threads or os.cpu_count() or 1
        path = str(source.path)
        params = C.llama_model_default_params()
        try:
            self._model = LlamaModel(path_model=path, params=params, verbose=False)
        except (ValueError, RuntimeError) as e:
            raise BadModel(
                f"llama.cpp could not load {path} ({diagnose(Path(path)) or e}).",
                "Check the file is a complete GGUF of an architecture llama.cpp supports; re-export it.",
            ) from None
        model = self._model
        self.vocab_size = model.n_vocab()
        trained = model.n_ctx_train() or 4096
        self.context_length = n_ctx or min(source.spec.context if source.spec else trained, DEFAULT_MAX_CTX)
        self.eos_ids = {i for i in range(self.vocab_size) if C.llama_vocab_is_eog(model.vocab, i)}
        meta = model.metadata()
        bos = model.token_bos()
        self.bos_id = bos if bos >= 0 else None
        self.add_bos = meta.get("tokenizer.ggml.add_bos_token", "false") == "true" and self.bos_id is not None
        source_template = meta.get("tokenizer.chat_template")
        bos_text = self.detokenize([bos]) if bos >= 0 else ""
        self.template = (
            ChatTemplate(
                source_template,
                f"GGUF metadata of {Path(path).name}",
                bos_text,
                self.detokenize([model.token_eos()]),
            )
            if source_template
            else None
        )
        self.metadata = meta
        self.runner = LlamaBatchRunner(
            model.model,
            self.vocab_size,
            parallel,
            self.context_length,
            self.n_threads,
            prefix_cache=prefix_cache,
        )
        # Free the context before the model, and both before interpreter teardown (ctypes may be gone then).
        self._finalizer = weakref.finalize(self, _close, self.runner, model)

    # -- Engine --

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        import llama_cpp as C

        data = text.encode("utf-8")
        cap = len(data) + 2  # a token covers at least one byte
        buf = (C.llama_token * cap)()
        n = C.llama_tokenize(self._model.vocab, data, len(data), buf, cap, False, special)
        if n < 0:
            raise RuntimeError(f"llama.cpp could not tokenize {text[:40]!r}")
        return list(buf[:n])

    def detokenize(self, ids: Sequence[int]) -> str:
        return self._model.detokenize(list(ids), special=True).decode("utf-8", errors="replace")

    # -- capabilities --

    def _make_scheduler(self) -> Scheduler:
        return BatchScheduler(self, self.runner, self.max_queue)

    def compile_constraint(self, constraint: OutputConstraint) -> Grammar:
        from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

        if constraint.schema is None:
            gbnf = JSON_GBNF
        else:
            try:
                gbnf = json_schema_to_gbnf(json.dumps(constraint.schema))
            except Exception as e:  # the converter raises plain exceptions on schemas it cannot express
                raise UserError(
                    f"the JSON schema cannot be turned into a grammar: {type(e).__name__}: {e}",
                    "Simplify the schema.",
                ) from None
        # JSON strings cannot hold raw control characters, but the converter's `char` rule lets them through
        # (a model then writes a raw newline, and the "constrained" output does not parse): exclude them, as
        # llama.cpp's own json-schema-to-grammar does.
        gbnf = gbnf.replace(_LOOSE_CHAR, _JSON_CHAR)
        if constraint.tagged:
            gbnf = _tagged(gbnf)
        if len(gbnf) > MAX_GRAMMAR_CHARS:
            raise UserError(
                f"the JSON schema makes a grammar of {len(gbnf):,} characters (at most {MAX_GRAMMAR_CHARS:,}): "
                "its length or count bounds are too large.",
                "Lower minLength/maxLength/minItems/maxItems in the schema.",
            )
        self.runner.check_grammar(gbnf)
        return Grammar(gbnf)

    def _free(self) -> None:
        self._finalizer()


def _close(runner: LlamaBatchRunner, model: object) -> None:
    runner.close()
    model.close()  # type: ignore[attr-defined]
