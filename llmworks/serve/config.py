"""`llmworks serve`'s config: `llmworks serve [MODEL ...] [--config serve.yaml] [key=value ...] [--flags]`."""

from __future__ import annotations

from pydantic import Field, field_validator

from llmworks.config import StageConfig

LOG_LEVELS = ("debug", "info", "warning", "error")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
VLLM_SCHEDULES_ITSELF = ("lora", "parallel", "max_queue", "embedding_model")
"""Settings vLLM does not take from us: it schedules, batches and loads adapters by itself."""


def parse_kb_spec(spec: str) -> tuple[str, list[str]]:
    """`manual` -> ("manual", ["manual"]); `docs=manual+faq` -> ("docs", ["manual", "faq"])."""
    name, sep, rest = spec.partition("=")
    kbs = [k.strip() for k in (rest if sep else name).split("+") if k.strip()]
    if not name.strip() or not kbs:
        raise ValueError(f"kb={spec!r} (write NAME or ALIAS=NAME+NAME)")
    return name.strip(), kbs


class ServeConfig(StageConfig):
    """One OpenAI-compatible server (and web chat) over one or more models."""

    models: list[str] = Field(default_factory=list)
    """Models to serve: registry names, .gguf files, HF directories (default: the embedded one)."""
    engine: str | None = None
    """llamacpp | transformers | vllm (default: llamacpp for a GGUF, transformers for an HF directory)."""
    host: str = "127.0.0.1"
    """Bind address (loopback unless told otherwise)."""
    port: int = 8000
    """TCP port; 0 picks a free one."""
    lora: list[str] = Field(default_factory=list)
    """NAME=PATH of a LoRA adapter, served as the model NAME (repeatable)."""
    api_key: str | None = None
    """Require 'Authorization: Bearer KEY' on /v1 (default: $LLMWORKS_API_KEY, else none)."""
    max_queue: int = 64
    """Requests that may wait; past it: 429."""
    parallel: int = 8
    """Sequences decoded together (llamacpp)."""
    ctx: int = 2048
    """Context per sequence, prompt + completion."""
    embedding_model: str | None = None
    """sentence-transformers directory for /v1/embeddings (default: all-MiniLM-L6-v2)."""
    log_level: str = "info"
    """debug | info (a line per request) | warning | error."""
    agents: list[str] = Field(default_factory=list)
    """Agent configs (YAML) to serve as the models agent:NAME, on the first model unless they name one."""
    tool_grammar: bool = True
    """tool_choice auto on llama.cpp: a call the model starts is grammar-constrained to the tools' schemas
    (off: calls are free text, parsed afterwards)."""
    agent_builder: bool = False
    """Serve the agent builder page at /builder: edit an agent config, try it live, save its YAML."""
    kb: list[str] = Field(default_factory=list)
    """Knowledge bases served as models `rag:NAME` (repeatable; ALIAS=NAME+NAME serves several as one),
    answered by the first model."""
    kb_dir: str | None = None
    """Where the knowledge bases live (default: the llmworks home's kb/)."""
    rag_access: str | None = None
    """YAML file mapping API keys to the knowledge bases (and models) each may use."""
    rag_config: str | None = None
    """YAML file of `rag ask` settings for the served knowledge bases (k, refusal, max_tokens, ...)."""

    @field_validator("log_level", "engine", mode="before")
    @classmethod
    def _lower(cls, v: object) -> object:
        return v.lower() if isinstance(v, str) else v

    def problems(self) -> list[str]:
        from llmworks.engines import ENGINES

        errors = []
        engines = (*ENGINES, "vllm")
        if self.engine is not None and self.engine not in engines:
            errors.append(f"engine={self.engine!r} (choose one of {', '.join(engines)})")
        if self.log_level not in LOG_LEVELS:
            errors.append(f"log_level={self.log_level!r} (choose one of {', '.join(LOG_LEVELS)})")
        if not 0 <= self.port <= 65535:
            errors.append(f"port={self.port} (must be in 0-65535; 0 picks a free one)")
        if self.parallel < 1:
            errors.append(f"parallel={self.parallel} (must be >= 1)")
        if self.ctx < 16:
            errors.append(f"ctx={self.ctx} (must be >= 16)")
        if self.max_queue < 0:
            errors.append(f"max_queue={self.max_queue} (must be >= 0)")
        for spec in self.kb:
            try:
                parse_kb_spec(spec)
            except ValueError as e:
                errors.append(str(e))
        if (self.rag_access or self.rag_config) and not self.kb:
            errors.append("rag_access and rag_config need knowledge bases to serve (--kb NAME)")
        for spec in self.lora:
            name, sep, path = spec.partition("=")
            if not (sep and name and path):
                errors.append(f"lora={spec!r} (write NAME=PATH, e.g. sql=runs/sql-lora)")
        if self.engine == "vllm" and (self.agents or self.agent_builder):
            errors.append("engine=vllm serves no agents (serve them from llmworks serve on another engine)")
        if self.engine == "vllm":
            fields = type(self).model_fields
            given = [
                k
                for k in VLLM_SCHEDULES_ITSELF
                if getattr(self, k) != fields[k].get_default(call_default_factory=True)
            ]
            if given:
                flags = ", ".join(f"--{k.replace('_', '-')}" for k in given)
                errors.append(
                    f"engine=vllm does not take {', '.join(given)} ({flags}): vLLM schedules and batches by itself "
                    "(drop them, or run `vllm serve` with its own options)"
                )
            if len(self.models) > 1:
                errors.append("engine=vllm serves one model per server (start one server per model)")
            if self.kb:
                errors.append(
                    "engine=vllm cannot serve knowledge bases (kb): they answer with an in-process model"
                )
        return errors

    def summary_line(self) -> str:
        """The settings that matter, on one line (api_key masked; empty settings left out)."""
        shown = {
            "models": ",".join(self.models) or "embedded",
            "engine": self.engine or "auto",
            "host": self.host,
            "port": self.port,
            "parallel": self.parallel,
            "ctx": self.ctx,
            "max_queue": self.max_queue,
            "lora": ",".join(self.lora),
            "kb": ",".join(self.kb),
            "embedding_model": self.embedding_model,
            "api_key": "***" if self.api_key else "none",
            "log_level": self.log_level,
            "agents": ",".join(self.agents),
        }
        return " ".join(f"{k}={v}" for k, v in shown.items() if v not in ("", None))
