"""Prometheus metrics for /metrics: requests by status, queue depth, running sequences, tokens, latencies."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self, queue_depth: Callable[[], float], running: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "llmworks_requests", "HTTP requests by endpoint and status", ["endpoint", "status"], registry=r
        )
        Gauge("llmworks_queue_depth", "Requests waiting for a sequence slot", registry=r).set_function(
            queue_depth
        )
        Gauge("llmworks_running_sequences", "Sequences being generated", registry=r).set_function(running)
        self.prompt_tokens = Counter("llmworks_prompt_tokens", "Prompt tokens processed", registry=r)
        self.generation_tokens = Counter("llmworks_generation_tokens", "Tokens generated", registry=r)
        self.ttft = Histogram(
            "llmworks_time_to_first_token_seconds",
            "Time to first token",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.latency = Histogram(
            "llmworks_request_latency_seconds",
            "End-to-end request latency",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
