"""Fixtures for the fold tests: the stores over fakeredis, a tenant, a fake summarizer."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from app.domain.folding.fold import Fold
from app.domain.memory.store import SessionStore
from app.domain.memory.stored_format import NewMessage
from app.domain.scheduling.outcome import JobTiming
from app.domain.tenancy.policy import EffectivePolicy, Policy
from app.domain.tenancy.usage import UsageLedger

from .fakes import MESSAGE_TOKENS, TENANT, FakeSummarizer, RecordingObserver, Tenants


@pytest.fixture
def sessions(fake_redis, keyspace) -> SessionStore:
    return SessionStore(fake_redis, keyspace)


@pytest.fixture
def take_fold_lock(fold_store, sessions) -> Callable[..., bool]:
    """Take an existing session's fold lock, as another process's fold does."""

    def take(session_id: str, token: str, *, seconds: float = 30.0) -> bool:
        state = fold_store.begin_fold(TENANT, session_id, lock_token=token, lock_seconds=seconds)
        assert state is None or state.gen is not None, "a session must exist to hold its fold lock"
        return state is not None

    return take


@pytest.fixture
def usage(fake_redis, keyspace) -> UsageLedger:
    return UsageLedger(fake_redis, keyspace)


@pytest.fixture
def policy(defaults) -> EffectivePolicy:
    return defaults.resolve(Policy(window_size=4, summary_model="test-model", summary_prompt="Be brief."))


@pytest.fixture
def tenants(policy) -> Tenants:
    registry = Tenants()
    registry.add(TENANT, policy)
    return registry


@pytest.fixture
def summarizer() -> FakeSummarizer:
    return FakeSummarizer()


@pytest.fixture
def observer() -> RecordingObserver:
    return RecordingObserver()


@pytest.fixture
def timing() -> JobTiming:
    return JobTiming(lock_seconds=30.0, retry_base=2.0, retry_max=300.0, budget_recheck=60.0)


@pytest.fixture
def fold(fold_store, tenants, usage, summarizer, timing, observer) -> Fold:
    return Fold(fold_store, tenants, usage, summarizer, timing, rng=random.Random(7), observer=observer)


@pytest.fixture
def seed(sessions) -> Callable[..., None]:
    """Append ``count`` messages m1..mN (10 tokens each) to a session."""

    def seed(session_id: str, count: int, *, tenant_id: str = TENANT, start: int = 1) -> None:
        messages = [
            NewMessage("Human" if i % 2 else "AI", f"m{i}", None, MESSAGE_TOKENS)
            for i in range(start, start + count)
        ]
        sessions.append(tenant_id, session_id, messages)

    return seed
