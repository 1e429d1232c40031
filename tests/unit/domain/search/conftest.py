"""Fixtures for the search tests: the session, search and usage stores over fakeredis, a
tenant registry with long-term memory on, a fake embedder, index jobs and the service."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable

import pytest

from app.domain.folding.scripts import FoldCommit
from app.domain.memory.store import SessionStore
from app.domain.memory.stored_format import NewMessage
from app.domain.scheduling.outcome import JobTiming
from app.domain.search.indexing import IndexJob
from app.domain.search.service import SearchService
from app.domain.search.store import SearchStore
from app.domain.tenancy.policy import EffectivePolicy, Policy, PolicyDefaults
from app.domain.tenancy.usage import UsageLedger

from .fakes import OTHER, TENANT, FakeEmbedder, RecordingObserver, Tenants

_UNSET = object()


@functools.cache
def _shipped_defaults() -> PolicyDefaults:
    from app.extensions import policy_defaults
    from config import Settings

    return policy_defaults(Settings())


@pytest.fixture
def defaults() -> PolicyDefaults:
    """The shipped defaults, built once (the first time, inside a test, so from the cleaned
    environment): every test here builds several services on them."""
    return _shipped_defaults()


@pytest.fixture
def sessions(fake_redis, keyspace) -> SessionStore:
    return SessionStore(fake_redis, keyspace)


@pytest.fixture
def search_store(fake_redis, keyspace) -> SearchStore:
    return SearchStore(fake_redis, keyspace)


@pytest.fixture
def usage(fake_redis, keyspace) -> UsageLedger:
    return UsageLedger(fake_redis, keyspace)


@pytest.fixture
def make_policy(defaults) -> Callable[..., EffectivePolicy]:
    """Long-term memory on, no budget, no TTL, unless overridden."""

    def make(**overrides: object) -> EffectivePolicy:
        fields: dict[str, object] = {
            "long_term_memory": True,
            "session_ttl_seconds": 0,
            "summary_token_budget_daily": 0,
            "window_size": 4,
        }
        fields.update(overrides)
        return defaults.resolve(Policy(**fields))

    return make


@pytest.fixture
def tenants(make_policy) -> Tenants:
    registry = Tenants()
    registry.add(TENANT, make_policy())
    registry.add(OTHER, make_policy())
    return registry


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def observer() -> RecordingObserver:
    return RecordingObserver()


@pytest.fixture
def timing() -> JobTiming:
    return JobTiming(lock_seconds=30.0, retry_base=2.0, retry_max=300.0, budget_recheck=60.0)


@pytest.fixture
def make_job(search_store, tenants, usage, embedder, timing, observer) -> Callable[..., IndexJob]:
    """An index job (a "process"); ``make_job(embedder=None)`` indexes keywords only."""

    default_embedder = embedder

    def make(embedder: object = _UNSET, store: SearchStore | None = None) -> IndexJob:
        return IndexJob(
            store or search_store,
            tenants,
            usage,
            default_embedder if embedder is _UNSET else embedder,  # type: ignore[arg-type]
            timing,
            rng=random.Random(7),
            observer=observer,
        )

    return make


@pytest.fixture
def job(make_job) -> IndexJob:
    return make_job()


@pytest.fixture
def keyword_job(make_job) -> IndexJob:
    return make_job(embedder=None)


@pytest.fixture
def make_service(search_store, sessions, usage, embedder) -> Callable[..., SearchService]:
    default_embedder = embedder

    def make(embedder: object = _UNSET, exact_vector_limit: int = 20_000) -> SearchService:
        return SearchService(
            search_store,
            sessions,
            usage,
            default_embedder if embedder is _UNSET else embedder,  # type: ignore[arg-type]
            exact_vector_limit=exact_vector_limit,
        )

    return make


@pytest.fixture
def seed(sessions) -> Callable[..., list[int]]:
    """Append messages with these contents (alternating Human/AI) to a session, marked for
    indexing; ``metadata`` applies to every one of them. Returns their ids."""

    def seed(
        session_id: str, *contents: str, tenant_id: str = TENANT, metadata: dict | None = None
    ) -> list[int]:
        new = [
            NewMessage("Human" if i % 2 == 0 else "AI", content, metadata, 10)
            for i, content in enumerate(contents)
        ]
        return sessions.append(tenant_id, session_id, new, indexed=True).ids

    return seed


@pytest.fixture
def archive(fold_store, fake_redis, keyspace, sessions) -> Callable[..., None]:
    """Fold the ``count`` oldest window messages of a session into its archive (what a
    fold does with long-term memory on)."""

    def archive(session_id: str, count: int, *, tenant_id: str = TENANT) -> None:
        state = fold_store.begin_fold(tenant_id, session_id, lock_token="fold-token", lock_seconds=30)
        assert state is not None and state.gen is not None
        folded = [m["id"] for m in state.messages[:count]]
        commit = FoldCommit(state.gen, state.watermark, 0, "summary", 10 * count, folded, archive=True)
        finished = fold_store.finish_fold(
            tenant_id, session_id, commit, lock_token="fold-token", window_size=1000, window_tokens=None
        )
        assert finished.status == "ok"

    return archive
