"""Per-process infrastructure handles, created lazily after fork.

gunicorn forks workers from a master that imported the app; sockets or threads made
before the fork would be shared by every child (or, for threads, silently dead). So
nothing here is built in ``create_app``: the first use in a process builds it, and a
changed pid (a fork happened since) builds it again.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from app.domain.context.service import ContextService
from app.domain.folding.store import FoldingStore
from app.domain.keyspace import Keyspace
from app.domain.memory.service import MemoryService
from app.domain.memory.store import SessionStore
from app.domain.redis_access import is_cluster
from app.domain.scheduling.due_set import DueSet
from app.domain.search.embedder import Embedder
from app.domain.search.redisearch import VectorIndex
from app.domain.search.service import SearchService
from app.domain.search.store import SearchStore
from app.domain.tenancy.authentication import Authenticator
from app.domain.tenancy.cache import TenancyCache
from app.domain.tenancy.policy import PolicyDefaults
from app.domain.tenancy.store import TenancyStore
from app.domain.tenancy.tenants import TenantRegistry
from app.domain.tenancy.usage import UsageLedger
from app.domain.transfer.service import TransferService
from app.domain.transfer.store import TransferStore
from app.llm import build_embedder, build_summarizer
from app.redis_breaker import RedisBreaker
from config import Settings

if TYPE_CHECKING:
    from app.domain.scheduling.outcome import JobTiming
    from app.domain.scheduling.runner import Job, JobRunner

log = logging.getLogger("recollect")


def policy_defaults(settings: Settings) -> PolicyDefaults:
    """The one mapping from settings to the policy every tenant starts from."""
    return PolicyDefaults(
        rate_limit=settings.rate_limit,
        session_ttl_seconds=settings.session_ttl_seconds,
        window_size=settings.window_size,
        window_tokens=settings.window_tokens,
        max_message_bytes=settings.max_message_bytes,
        max_sessions=None,
        summary_model=settings.summary_model,
        summary_prompt=None,
        summary_token_budget_daily=0,
        long_term_memory=settings.long_term_memory,
    )


def _job_timing(settings: Settings, *, calls_per_run: int) -> JobTiming:
    """A job's timings: its lock outlives ``calls_per_run`` LLM calls at their worst case
    (a run outliving it cannot commit: the commit checks the lock's token)."""
    from app.domain.scheduling.outcome import JobTiming

    llm_worst_case = settings.llm_timeout_seconds * (settings.llm_max_retries + 1)
    return JobTiming(
        lock_seconds=max(10.0, llm_worst_case * calls_per_run),
        retry_base=settings.summary_retry_base_seconds,
        retry_max=settings.summary_retry_max_seconds,
        budget_recheck=settings.budget_recheck_seconds,
    )


def _runner(
    resources: Resources, job: Job, due: DueSet, *, name: str, workers: int, sweep: float
) -> JobRunner:
    from app.domain.scheduling.runner import JobRunner, ScheduleConfig

    config = ScheduleConfig(workers=workers, sweep_interval=sweep, lease_seconds=job.timing.lock_seconds + 5)
    principal_for = resources.authenticator.principal_for
    return JobRunner(job, due, principal_for, resources.keyspace, config, name=name, observer=job.observer)


def build_runner(resources: Resources) -> JobRunner:
    """This process's fold schedule; a fold may take a few chunks' LLM calls."""
    from app.domain.folding.fold import Fold
    from app.metrics import FoldMetrics

    settings = resources.settings
    fold = Fold(
        resources.folding,
        resources.authenticator.principal_for,
        resources.usage,
        build_summarizer(settings),
        _job_timing(settings, calls_per_run=4),
        observer=FoldMetrics(),
    )
    return _runner(
        resources,
        fold,
        resources.fold_due,
        name="fold",
        workers=settings.summary_workers,
        sweep=settings.sweep_interval_seconds,
    )


def build_index_runner(resources: Resources) -> JobRunner:
    """This process's index schedule (terms, and embeddings when configured)."""
    from app.domain.search.indexing import IndexJob
    from app.metrics import IndexMetrics

    settings = resources.settings
    job = IndexJob(
        resources.search_store,
        resources.authenticator.principal_for,
        resources.usage,
        resources.embedder,
        _job_timing(settings, calls_per_run=2),
        observer=IndexMetrics(),
    )
    return _runner(
        resources,
        job,
        resources.index_due,
        name="index",
        workers=settings.index_workers,
        sweep=settings.index_sweep_interval_seconds,
    )


def fast_retry() -> Retry:
    """One quick retry (a stale pooled connection after a Redis restart), never seconds of
    backoff: an outage must become a fast 503, not a slow one."""
    return Retry(ExponentialBackoff(cap=0.05, base=0.01), 1)


def make_redis(settings: Settings, breaker: RedisBreaker) -> redis.Redis:
    """A client with explicit timeouts, at most one quick retry and (single node) the app's
    circuit breaker, so an unreachable or hung Redis becomes a fast 503 instead of a hung
    request thread."""
    if settings.redis_url is None:
        import fakeredis

        return fakeredis.FakeRedis(server=fakeredis.FakeServer())
    cluster_url = cluster_seed_url(settings.redis_url)
    if cluster_url is not None:
        return RedisCluster.from_url(
            cluster_url,
            socket_timeout=settings.redis_socket_timeout,
            socket_connect_timeout=settings.redis_connect_timeout,
            max_connections=settings.redis_max_connections,
        )
    return redis.Redis(connection_pool=make_pool(settings, breaker))


def make_pool(settings: Settings, breaker: RedisBreaker) -> redis.ConnectionPool:
    """The single-node pool both the store and the rate limiter use (one each per process)."""
    assert settings.redis_url is not None
    return breaker.pool(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        # Waiting for a free connection is bounded like a command: one connect plus one
        # socket timeout at most.
        timeout=settings.redis_connect_timeout + settings.redis_socket_timeout,
        socket_timeout=settings.redis_socket_timeout,
        socket_connect_timeout=settings.redis_connect_timeout,
        retry=fast_retry(),
        health_check_interval=30,
    )


def cluster_seed_url(url: str) -> str | None:
    """``redis+cluster://`` / ``rediss+cluster://`` (the scheme flask-limiter's storage also
    understands) → the plain URL of one seed node for redis-py's cluster client."""
    for scheme, plain in (("redis+cluster://", "redis://"), ("rediss+cluster://", "rediss://")):
        if url.startswith(scheme):
            return plain + url[len(scheme) :]
    return None


# This process's id, kept current by a fork hook: Resources notices a fork on every
# property read (several per request), and os.getpid() would be a system call each time.
_process_id = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _process_id.__setitem__(0, os.getpid()))


def current_pid() -> int:
    return _process_id[0]


class Resources:
    """The handles one process uses; reached as ``current_app.extensions["recollect"]``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keyspace = Keyspace(settings.key_prefix)
        # Only a timestamp: safe to build before a fork and to share across processes' copies.
        self.breaker = RedisBreaker()
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._redis: redis.Redis | None = None
        self._store: SessionStore | None = None
        self._folding: FoldingStore | None = None
        self._fold_due: DueSet | None = None
        self._index_due: DueSet | None = None
        self._registry: TenantRegistry | None = None
        self._authenticator: Authenticator | None = None
        self._runner: JobRunner | None = None
        self._index_runner: JobRunner | None = None
        self._background_pid: int | None = None
        self._search_store: SearchStore | None = None
        self._vector_index: VectorIndex | None = None
        self._search: SearchService | None = None
        self._context: ContextService | None = None
        self._embedder: Embedder | None = None
        self._memory: MemoryService | None = None
        self._usage: UsageLedger | None = None
        self._transfer: TransferService | None = None

    def _ensure(self) -> None:
        if self._pid == current_pid():
            return
        with self._lock:
            if self._pid == current_pid():
                return
            if self.settings.redis_url is None and self._redis is not None:
                # The embedded store is the data itself: rebuilding it would empty it.
                client = self._redis
            else:
                client = make_redis(self.settings, self.breaker)
            self._redis = client
            # Whether the server has the search module is asked on first use, not here:
            # Redis may be down while the process starts.
            self._vector_index = (
                VectorIndex(client, self.keyspace)
                if self.settings.redisearch == "auto" and not is_cluster(client)
                else None
            )
            vector_prefix = self._vector_index.prefix_if_available if self._vector_index is not None else None
            self._store = SessionStore(client, self.keyspace, vector_prefix=vector_prefix)
            self._folding = FoldingStore(client, self.keyspace)
            self._fold_due = DueSet(client, self.keyspace.due)
            self._index_due = DueSet(client, self.keyspace.index_due)
            tenancy = TenancyStore(client, self.keyspace)
            defaults = policy_defaults(self.settings)
            cache = TenancyCache(tenancy, defaults, seconds=self.settings.auth_cache_seconds)
            self._registry = TenantRegistry(tenancy, cache, defaults)
            self._authenticator = Authenticator(tenancy, cache)
            self._runner = None
            self._index_runner = None
            self._usage = UsageLedger(client, self.keyspace)
            self._search_store = SearchStore(client, self.keyspace, vector_index=self._vector_index)
            self._embedder = build_embedder(self.settings)
            self._search = SearchService(
                self._search_store,
                self._store,
                self._usage,
                self._embedder,
                exact_vector_limit=self.settings.exact_vector_limit,
            )
            self._context = ContextService(self._store, self._search)
            self._memory = MemoryService(
                self._store,
                self._usage,
                max_messages_per_post=self.settings.max_messages_per_post,
                folds=lambda: self.runner,
            )
            self._transfer = TransferService(TransferStore(client, self.keyspace), self._store)
            self._pid = current_pid()

    @property
    def redis(self) -> redis.Redis:
        self._ensure()
        assert self._redis is not None
        return self._redis

    @property
    def store(self) -> SessionStore:
        self._ensure()
        assert self._store is not None
        return self._store

    @property
    def folding(self) -> FoldingStore:
        self._ensure()
        assert self._folding is not None
        return self._folding

    @property
    def fold_due(self) -> DueSet:
        self._ensure()
        assert self._fold_due is not None
        return self._fold_due

    @property
    def index_due(self) -> DueSet:
        self._ensure()
        assert self._index_due is not None
        return self._index_due

    @property
    def authenticator(self) -> Authenticator:
        self._ensure()
        assert self._authenticator is not None
        return self._authenticator

    @property
    def registry(self) -> TenantRegistry:
        self._ensure()
        assert self._registry is not None
        return self._registry

    @property
    def memory(self) -> MemoryService:
        self._ensure()
        assert self._memory is not None
        return self._memory

    @property
    def usage(self) -> UsageLedger:
        self._ensure()
        assert self._usage is not None
        return self._usage

    @property
    def search_store(self) -> SearchStore:
        self._ensure()
        assert self._search_store is not None
        return self._search_store

    @property
    def search(self) -> SearchService:
        self._ensure()
        assert self._search is not None
        return self._search

    @property
    def context(self) -> ContextService:
        self._ensure()
        assert self._context is not None
        return self._context

    @property
    def transfer(self) -> TransferService:
        self._ensure()
        assert self._transfer is not None
        return self._transfer

    @property
    def vector_index(self) -> VectorIndex | None:
        """The RediSearch vector index, when the server has the search module."""
        return self.search_store.vector_index

    @property
    def embedder(self) -> Embedder | None:
        self._ensure()
        return self._embedder

    @property
    def index_runner(self) -> JobRunner:
        self._ensure()
        if self._index_runner is None:
            with self._lock:
                if self._index_runner is None:
                    self._index_runner = build_index_runner(self)
        return self._index_runner

    def start_background_work(self) -> None:
        """Start this process's fold and index pools and sweepers (idempotent, cheap when
        already done: it runs before every request)."""
        if self._background_pid == current_pid():
            return
        for runner in (self.runner, self.index_runner):
            runner.start()
        self._background_pid = current_pid()

    @property
    def runner(self) -> JobRunner:
        self._ensure()
        if self._runner is None:
            with self._lock:
                if self._runner is None:
                    self._runner = build_runner(self)
        return self._runner

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop this process's summarization pool and close its connections
        (gunicorn ``worker_exit``)."""
        if self._pid != current_pid():
            return
        for runner in (self._runner, self._index_runner):
            if runner is not None:
                runner.shutdown(wait=wait)
        if self._redis is not None:
            self._redis.close()
            pool = getattr(self._redis, "connection_pool", None)  # a cluster client has none
            if pool is not None:
                pool.disconnect()
