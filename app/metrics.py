"""Prometheus metrics, correct across gunicorn workers.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``config/gunicorn.conf.py`` sets and wipes it when
``RECOLLECT_METRICS=1``), prometheus-client keeps each worker's values in memory-mapped
files and ``/metrics`` sums them; without it (tests, ``make run``) the values live in the
one process. Tenant labels are bounded: the first ``RECOLLECT_METRICS_TENANT_LABELS``
tenants a process sees get their own label, the rest are folded into ``other``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from app.domain.scheduling.due_set import DueStats

REQUESTS = Counter(
    "recollect_http_requests_total",
    "HTTP requests by route template, method and status",
    ["route", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "recollect_http_request_duration_seconds",
    "HTTP request latency by route template and method",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
FOLDS = Counter(
    "recollect_summarization_jobs_total",
    "Summarization jobs by outcome (queued, done, failed, retried, deferred, busy, conflict, gone)",
    ["outcome"],
)
FOLDS_RUNNING = Gauge(
    "recollect_summarization_jobs_running", "Summarizations running now", multiprocess_mode="livesum"
)
INDEX_PASSES = Counter(
    "recollect_index_jobs_total",
    "Index passes by outcome (queued, done, failed, retried, deferred, busy, conflict, gone)",
    ["outcome"],
)
INDEX_RUNNING = Gauge("recollect_index_jobs_running", "Index passes running now", multiprocess_mode="livesum")
EMBEDDING_SECONDS = Histogram(
    "recollect_embedding_request_duration_seconds",
    "Duration of one index pass's embedding call",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
LLM_SECONDS = Histogram(
    "recollect_llm_request_duration_seconds",
    "Duration of one summarization's LLM work",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120),
)
LLM_TOKENS = Counter("recollect_llm_tokens_total", "LLM tokens by tenant and kind", ["tenant", "kind"])
RATE_LIMITED = Counter("recollect_rate_limited_total", "Requests rejected by rate limits", ["tenant"])
REDIS_ERRORS = Counter("recollect_redis_errors_total", "Requests that failed because Redis was unavailable")


class TenantLabels:
    """At most ``cap`` distinct tenant label values per process; the rest are ``other``."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, tenant_id: str) -> str:
        if tenant_id in self._seen:
            return tenant_id
        with self._lock:
            if len(self._seen) < self.cap:
                self._seen.add(tenant_id)
                return tenant_id
        return "other"


tenant_label = TenantLabels(int(os.environ.get("RECOLLECT_METRICS_TENANT_LABELS", "50")))


class FoldMetrics:
    """What the fold runner reports; a plain object so the domain stays free of Prometheus."""

    def outcome(self, name: str) -> None:
        FOLDS.labels(name).inc()

    def running(self, delta: int) -> None:
        FOLDS_RUNNING.inc(delta)

    def llm(self, tenant_id: str, seconds: float, prompt_tokens: int, completion_tokens: int) -> None:
        LLM_SECONDS.observe(seconds)
        label = tenant_label(tenant_id)
        LLM_TOKENS.labels(label, "prompt").inc(prompt_tokens)
        LLM_TOKENS.labels(label, "completion").inc(completion_tokens)


class IndexMetrics:
    """What the index runner reports (embedding tokens count as the tenant's prompt tokens)."""

    def outcome(self, name: str) -> None:
        INDEX_PASSES.labels(name).inc()

    def running(self, delta: int) -> None:
        INDEX_RUNNING.inc(delta)

    def llm(self, tenant_id: str, seconds: float, prompt_tokens: int, completion_tokens: int) -> None:
        EMBEDDING_SECONDS.observe(seconds)
        LLM_TOKENS.labels(tenant_label(tenant_id), "embedding").inc(prompt_tokens)


class DueSetCollector(Collector):
    """Summarization lag, asked of the fold schedule at scrape time (the due set is shared
    by every worker, so one process reporting it is exactly right)."""

    def __init__(self, due_stats: Callable[[], DueStats]) -> None:
        self._due_stats = due_stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self._due_stats()
        lag = max(0.0, time.time() - stats.oldest_due_at) if stats.oldest_due_at is not None else 0.0
        yield GaugeMetricFamily(
            "recollect_summarization_sessions_due",
            "Sessions with messages awaiting summary",
            value=stats.sessions,
        )
        yield GaugeMetricFamily(
            "recollect_summarization_lag_seconds",
            "How long the longest-waiting due session has been due",
            value=lag,
        )


def render(due_stats: Callable[[], DueStats]) -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        for collector in list(REGISTRY._collector_to_names):  # noqa: SLF001 - copy the defaults
            registry.register(collector)
    registry.register(DueSetCollector(due_stats))
    return generate_latest(registry), CONTENT_TYPE_LATEST
