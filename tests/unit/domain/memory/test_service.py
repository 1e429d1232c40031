"""The memory service: the API's operations over the store, the tenant's policy and the fold
scheduler, taking plain values and raising the domain's errors."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from app.domain import tokens
from app.domain.errors import Forbidden, InvalidRequest, NotFound, QuotaExceeded, TooLarge
from app.domain.folding.scripts import FoldCommit
from app.domain.folding.store import FoldingStore
from app.domain.memory import store as store_module
from app.domain.memory.service import MAX_SESSION_ID_BYTES, MemoryService, validate_session_id
from app.domain.scheduling.claims import FoldClaim
from app.domain.tenancy.authentication import Principal
from app.domain.tenancy.policy import Policy

from .conftest import TENANT

MAX_MESSAGES = 5


@dataclass
class Msg:
    """A message as the HTTP layer hands it over (``MessageLike``)."""

    content: str | None
    role: str = "Human"
    metadata: dict[str, Any] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None

    def tool_calls_json(self) -> list[dict[str, Any]] | None:
        return self.tool_calls


class FakeFolds:
    """The fold runner as the service sees it; records what it was asked."""

    def __init__(self, keyspace, *, has_slot: bool = True, already_folding: bool = False) -> None:
        self._keyspace = keyspace
        self.has_slot = has_slot
        self.already_folding = already_folding
        self.prepared: list[FoldClaim | None] = []
        self.started: list[FoldClaim] = []
        self.requested: list[tuple[str, str]] = []

    def prepare_claim(self, tenant_id: str, session_id: str) -> FoldClaim | None:
        claim = None
        if not self.already_folding:
            claim = FoldClaim(self._keyspace.due_member(tenant_id, session_id), 100.0, 400.0, self.has_slot)
        self.prepared.append(claim)
        return claim

    def start_claimed(self, claim: FoldClaim) -> None:
        self.started.append(claim)

    def request_fold(self, tenant_id: str, session_id: str) -> None:
        self.requested.append((tenant_id, session_id))


@dataclass
class FoldsFactory:
    folds: FakeFolds
    built: int = field(default=0)

    def __call__(self) -> FakeFolds:
        self.built += 1
        return self.folds


@pytest.fixture
def principal(defaults):
    """``principal(**policy_overrides)``: the tenant acting under that policy."""

    def make(**overrides: Any) -> Principal:
        return Principal(TENANT, "key-1", defaults.resolve(Policy(**overrides)))

    return make


@pytest.fixture
def service(store, usage) -> MemoryService:
    return MemoryService(store, usage, max_messages_per_post=MAX_MESSAGES)


@pytest.fixture
def folds(keyspace) -> FakeFolds:
    return FakeFolds(keyspace)


@pytest.fixture
def folding_service(store, usage, folds) -> MemoryService:
    return MemoryService(store, usage, max_messages_per_post=MAX_MESSAGES, folds=lambda: folds)


def contents(service: MemoryService, principal: Principal, session_id: str = "s1") -> list[str]:
    view = service.read(principal, session_id).view
    return [orjson.loads(raw)["content"] for raw in view.messages_json]


def due_score(fake_redis, keyspace, session_id: str = "s1") -> float | None:
    return fake_redis.zscore(keyspace.due, keyspace.due_member(TENANT, session_id))


# --- session ids -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "session_id",
    [
        "s",
        "a" * MAX_SESSION_ID_BYTES,
        "é" * (MAX_SESSION_ID_BYTES // 2),
        "ünï 🦊 :{}*/?#%",
        "\u00a0no-break space",
        "tab-less\u2028line separator",
    ],
)
def test_a_valid_session_id_is_returned_unchanged(session_id):
    assert validate_session_id(session_id) == session_id


@pytest.mark.parametrize(
    "session_id",
    [
        "",
        "a" * (MAX_SESSION_ID_BYTES + 1),
        "é" * (MAX_SESSION_ID_BYTES // 2) + "a",  # 257 bytes in only 129 characters
        "🦊" * 65,  # 260 bytes
        "nul\x00",
        "new\nline",
        "unit\x1fseparator",
        "del\x7f",
        "c1 control \x85",
        "c1 control \x9f",
        "lone surrogate \ud800",
        "\udfff",
    ],
)
def test_an_invalid_session_id_is_an_invalid_request(session_id):
    with pytest.raises(InvalidRequest) as raised:
        validate_session_id(session_id)
    assert raised.value.code == "invalid_session_id"


@pytest.mark.parametrize(
    "operation",
    [
        lambda service, p: service.append(p, "", [Msg("a")]),
        lambda service, p: service.read(p, ""),
        lambda service, p: service.delete(p, ""),
        lambda service, p: service.get_message(p, "", 1),
        lambda service, p: service.delete_message(p, "", 1),
    ],
    ids=["append", "read", "delete", "get_message", "delete_message"],
)
def test_every_session_operation_checks_the_session_id_first(service, principal, fake_redis, operation):
    with pytest.raises(InvalidRequest):
        operation(service, principal())
    assert fake_redis.dbsize() == 0


# --- append ------------------------------------------------------------------------------------


def test_append_stores_the_messages_with_their_token_counts_for_the_tenants_model(service, principal):
    tenant = principal(summary_model="gpt-4o-mini")
    result = service.append(tenant, "s1", [Msg("Hello there!"), Msg("General Kenobi.", role="AI")])
    assert result.ids == [1, 2] and result.created
    view = service.read(tenant, "s1").view
    stored = [orjson.loads(raw) for raw in reversed(view.messages_json)]
    expected = [
        tokens.count_message_tokens("Human", "Hello there!", "gpt-4o-mini"),
        tokens.count_message_tokens("AI", "General Kenobi.", "gpt-4o-mini"),
    ]
    assert [m["token_count"] for m in stored] == expected
    assert all(count > 3 for count in expected)
    assert result.window_tokens == sum(expected)


def test_append_keeps_role_content_and_metadata(service, principal):
    tenant = principal()
    service.append(tenant, "s1", [Msg('say "hi" 🦊', role="tool", metadata={"trace": {"id": 7}})])
    (raw,) = service.read(tenant, "s1").view.messages_json
    stored = orjson.loads(raw)
    assert (stored["role"], stored["content"], stored["metadata"]) == (
        "tool",
        'say "hi" 🦊',
        {"trace": {"id": 7}},
    )


def test_append_with_context_sets_the_summary(service, principal):
    tenant = principal()
    service.append(tenant, "s1", [], context="what came before")
    memory = service.read(tenant, "s1")
    assert memory.view.context == "what came before" and memory.view.messages_json == []


def test_append_replays_a_repeated_idempotency_key(service, principal):
    tenant = principal()
    first = service.append(tenant, "s1", [Msg("a")], idempotency_key="k")
    again = service.append(tenant, "s1", [Msg("a")], idempotency_key="k")
    assert again.replayed and again.ids == first.ids
    assert contents(service, tenant) == ["a"]


def test_append_applies_the_tenants_session_ttl(service, principal, fake_redis, keyspace):
    service.append(principal(session_ttl_seconds=3600), "s1", [Msg("a")])
    keys = keyspace.session(TENANT, "s1")
    assert fake_redis.ttl(keys.window) == 3600 and fake_redis.ttl(keys.meta) == 3600


def test_append_accepts_exactly_the_maximum_number_of_messages(service, principal):
    result = service.append(principal(), "s1", [Msg(str(i)) for i in range(MAX_MESSAGES)])
    assert len(result.ids) == MAX_MESSAGES


def test_append_refuses_more_messages_than_a_request_may_carry(service, principal, fake_redis):
    with pytest.raises(TooLarge) as raised:
        service.append(principal(), "s1", [Msg(str(i)) for i in range(MAX_MESSAGES + 1)])
    assert raised.value.code == "too_many_messages"
    assert str(MAX_MESSAGES) in raised.value.message
    assert fake_redis.dbsize() == 0


def test_append_counts_the_content_limit_in_utf8_bytes(service, principal):
    tenant = principal(max_message_bytes=64)
    service.append(tenant, "s1", [Msg("é" * 32)])  # 32 characters, 64 bytes: at the limit
    with pytest.raises(TooLarge):
        service.append(tenant, "s1", [Msg("é" * 32 + "a")])  # 33 characters, 65 bytes
    assert contents(service, tenant) == ["é" * 32]


def test_append_refuses_a_too_large_message_naming_it_and_writes_none_of_the_request(
    service, principal, fake_redis
):
    tenant = principal(max_message_bytes=64)
    with pytest.raises(TooLarge) as raised:
        service.append(tenant, "s1", [Msg("fine"), Msg("x" * 65)])
    assert raised.value.code == "message_too_large"
    assert "messages.1.content" in raised.value.message and "64" in raised.value.message
    assert fake_redis.dbsize() == 0


TOOL_CALLS = [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q":"x"}'}}]


def test_an_assistant_message_with_only_tool_calls_is_stored_with_empty_content(service, principal):
    tenant = principal(summary_model="gpt-4o-mini")
    service.append(tenant, "s1", [Msg(None, role="assistant", tool_calls=TOOL_CALLS)])
    (raw,) = service.read(tenant, "s1").view.messages_json
    stored = orjson.loads(raw)
    assert stored["content"] == "" and stored["tool_calls"] == TOOL_CALLS
    assert stored["token_count"] == tokens.count_message_tokens(
        "assistant", "", "gpt-4o-mini"
    ) + tokens.count_tokens(orjson.dumps(TOOL_CALLS).decode(), "gpt-4o-mini")


def test_a_tool_result_keeps_its_name_and_call_id_and_counts_the_name(service, principal):
    tenant = principal(summary_model="gpt-4o-mini")
    service.append(tenant, "s1", [Msg("42", role="tool", name="lookup", tool_call_id="call_1")])
    stored = orjson.loads(service.get_message(tenant, "s1", 1))
    assert (stored["name"], stored["tool_call_id"]) == ("lookup", "call_1")
    assert "tool_calls" not in stored
    assert stored["token_count"] == tokens.count_message_tokens(
        "tool", "42", "gpt-4o-mini"
    ) + tokens.count_tokens("lookup", "gpt-4o-mini")


# --- the session quota -------------------------------------------------------------------------


def test_a_tenant_at_its_session_quota_cannot_create_another_session(service, principal, fake_redis):
    tenant = principal(max_sessions=2)
    service.append(tenant, "s1", [Msg("a")])
    service.append(tenant, "s2", [Msg("b")])
    with pytest.raises(QuotaExceeded) as raised:
        service.append(tenant, "s3", [Msg("c")])
    assert isinstance(raised.value, Forbidden)
    assert raised.value.code == "quota_exceeded" and "2" in raised.value.message
    assert service.list_sessions(tenant, page=1, size=10) == ["s1", "s2"]
    assert service.read(tenant, "s3").view.window_length == 0


def test_a_tenant_at_its_session_quota_may_still_write_to_its_sessions(service, principal):
    tenant = principal(max_sessions=1)
    service.append(tenant, "s1", [Msg("a")])
    assert service.append(tenant, "s1", [Msg("b")]).ids == [2]
    assert contents(service, tenant) == ["b", "a"]


def test_deleting_a_session_frees_its_place_in_the_quota(service, principal):
    tenant = principal(max_sessions=1)
    service.append(tenant, "s1", [Msg("a")])
    service.delete(tenant, "s1")
    assert service.append(tenant, "s2", [Msg("b")]).created


def test_expired_sessions_do_not_count_against_the_quota(service, principal, monkeypatch):
    tenant = principal(max_sessions=1, session_ttl_seconds=60)
    wall = int(time.time() * 1000)
    monkeypatch.setattr(store_module, "now_ms", lambda: wall - 120_000)  # written 2 minutes ago
    service.append(tenant, "old", [Msg("a")])
    monkeypatch.setattr(store_module, "now_ms", lambda: wall)
    assert service.append(tenant, "new", [Msg("b")]).created


def test_without_a_quota_any_number_of_sessions_may_be_created(service, principal):
    tenant = principal()
    assert tenant.policy.max_sessions is None
    for i in range(20):
        service.append(tenant, f"s{i}", [])
    assert service.usage(TENANT, ttl_seconds=0)["sessions"] == 20


# --- scheduling the fold -----------------------------------------------------------------------


def test_an_append_within_the_window_schedules_no_fold(
    folding_service, folds, principal, fake_redis, keyspace
):
    folding_service.append(principal(window_size=4), "s1", [Msg(str(i)) for i in range(4)])
    assert len(folds.prepared) == 1
    assert folds.started == [] and folds.requested == []
    assert due_score(fake_redis, keyspace) is None


def test_an_overflowing_append_starts_the_fold_it_claimed(
    folding_service, folds, principal, fake_redis, keyspace
):
    result = folding_service.append(principal(window_size=4), "s1", [Msg(str(i)) for i in range(5)])
    assert result.fold_claimed is True
    assert folds.started == folds.prepared and folds.started[0] is not None
    assert folds.started[0].member == keyspace.due_member(TENANT, "s1")
    assert folds.requested == []
    assert due_score(fake_redis, keyspace) == 400.0, "leased until the claim's end"


def test_an_overflowing_append_without_a_free_slot_leaves_the_session_due(
    folding_service, folds, principal, fake_redis, keyspace
):
    folds.has_slot = False
    result = folding_service.append(principal(window_size=4), "s1", [Msg(str(i)) for i in range(5)])
    assert result.fold_claimed is False
    assert folds.started == [] and folds.requested == []
    assert due_score(fake_redis, keyspace) == 100.0, "due now, for a sweeper"


def test_an_overflowing_append_to_a_session_already_folding_here_requests_the_fold(
    folding_service, folds, principal
):
    folds.already_folding = True
    result = folding_service.append(principal(window_size=4), "s1", [Msg(str(i)) for i in range(5)])
    assert result.fold_claimed is None
    assert folds.requested == [(TENANT, "s1")] and folds.started == []


def test_an_append_within_the_window_to_a_session_already_folding_requests_nothing(
    folding_service, folds, principal
):
    folds.already_folding = True
    folding_service.append(principal(window_size=4), "s1", [Msg("a")])
    assert folds.requested == [] and folds.started == []


def test_an_append_over_the_token_budget_starts_a_fold(folding_service, folds, principal):
    tenant = principal(window_size=100, window_tokens=64)
    folding_service.append(tenant, "s1", [Msg("word " * 80)])
    assert len(folds.started) == 1


def test_a_replayed_append_starts_no_second_fold(folding_service, folds, principal):
    tenant = principal(window_size=4)
    batch = [Msg(str(i)) for i in range(5)]
    folding_service.append(tenant, "s1", batch, idempotency_key="k")
    folding_service.append(tenant, "s1", batch, idempotency_key="k")
    assert len(folds.started) == 1 and folds.requested == []


def test_an_append_refused_by_the_quota_schedules_no_fold(folding_service, folds, principal):
    tenant = principal(window_size=2, max_sessions=1)
    folding_service.append(tenant, "s1", [Msg("a")])
    with pytest.raises(QuotaExceeded):
        folding_service.append(tenant, "s2", [Msg(str(i)) for i in range(5)])
    assert folds.started == [] and folds.requested == []


def test_the_fold_runner_is_built_on_first_use_not_with_the_service(store, usage, keyspace, principal):
    factory = FoldsFactory(FakeFolds(keyspace))
    service = MemoryService(store, usage, max_messages_per_post=MAX_MESSAGES, folds=factory)
    assert factory.built == 0
    service.append(principal(), "s1", [Msg("a")])
    assert factory.built >= 1


def test_without_a_fold_runner_an_overflowing_append_still_succeeds(service, principal, fake_redis, keyspace):
    result = service.append(principal(window_size=2), "s1", [Msg(str(i)) for i in range(5)])
    assert result.ids == [1, 2, 3, 4, 5] and result.fold_claimed is None
    assert due_score(fake_redis, keyspace) is None


# --- read --------------------------------------------------------------------------------------


def test_read_returns_the_newest_window_size_messages_and_counts_the_rest_as_pending(service, principal):
    tenant = principal(window_size=2)
    service.append(tenant, "s1", [Msg(str(i)) for i in range(1, 6)])
    memory = service.read(tenant, "s1")
    assert memory.window_size == 2
    assert [orjson.loads(raw)["content"] for raw in memory.view.messages_json] == ["5", "4"]
    assert memory.view.window_length == 5
    assert memory.pending_summary == 3


def test_nothing_is_pending_while_the_window_is_within_policy(service, principal):
    tenant = principal(window_size=4)
    service.append(tenant, "s1", [Msg("a"), Msg("b")])
    assert service.read(tenant, "s1").pending_summary == 0


def test_reading_an_unknown_session_gives_an_empty_memory(service, principal):
    memory = service.read(principal(), "never-written")
    assert memory.view.messages_json == [] and memory.view.context is None
    assert memory.pending_summary == 0


def test_a_tenant_cannot_read_another_tenants_session(service, principal, defaults):
    service.append(principal(), "s1", [Msg("secret")])
    other = Principal("other", None, defaults.resolve(Policy()))
    assert service.read(other, "s1").view.messages_json == []
    with pytest.raises(NotFound):
        service.get_message(other, "s1", 1)


def test_with_long_term_memory_appended_messages_are_pending_indexing(
    service, principal, fake_redis, keyspace
):
    tenant = principal(long_term_memory=True)
    service.append(tenant, "s1", [Msg("a"), Msg("b")])
    assert service.read(tenant, "s1").pending_index == 2
    assert fake_redis.zscore(keyspace.index_due, keyspace.due_member(TENANT, "s1")) is not None


def test_without_long_term_memory_nothing_is_pending_indexing(service, principal, fake_redis, keyspace):
    tenant = principal(long_term_memory=False)
    service.append(tenant, "s1", [Msg("a"), Msg("b")])
    assert service.read(tenant, "s1").pending_index == 0
    assert fake_redis.zcard(keyspace.index_due) == 0


# --- history and the archive -------------------------------------------------------------------


def fold_into_archive(store, fake_redis, keyspace, ids: list[int]) -> None:
    fold_store = FoldingStore(fake_redis, keyspace)
    state = fold_store.begin_fold(TENANT, "s1", lock_token="tok", lock_seconds=30)
    assert state is not None and state.gen is not None
    commit = FoldCommit(state.gen, state.watermark, 0, "S", 0, ids, archive=True)
    assert (
        fold_store.finish_fold(
            TENANT, "s1", commit, lock_token="tok", window_size=1000, window_tokens=None
        ).status
        == "ok"
    )


def test_history_pages_through_the_archive_and_the_window(service, principal, store, fake_redis, keyspace):
    tenant = principal(long_term_memory=True)
    service.append(tenant, "s1", [Msg(str(i)) for i in range(1, 5)])
    fold_into_archive(store, fake_redis, keyspace, [1, 2])
    first = service.history(tenant, "s1", before=None, limit=3)
    assert [orjson.loads(raw)["content"] for raw in first.messages_json] == ["4", "3", "2"]
    rest = service.history(tenant, "s1", before=first.next_before, limit=3)
    assert [orjson.loads(raw)["content"] for raw in rest.messages_json] == ["1"]
    assert rest.next_before is None


def test_history_checks_the_session_id(service, principal):
    with pytest.raises(InvalidRequest):
        service.history(principal(), "bad\x00id", before=None, limit=10)


def test_archived_messages_can_be_got_and_deleted(service, principal, store, fake_redis, keyspace):
    tenant = principal(long_term_memory=True)
    service.append(tenant, "s1", [Msg("old"), Msg("new")])
    fold_into_archive(store, fake_redis, keyspace, [1])
    assert orjson.loads(service.get_message(tenant, "s1", 1))["content"] == "old"
    service.delete_message(tenant, "s1", 1)
    with pytest.raises(NotFound):
        service.get_message(tenant, "s1", 1)


# --- delete ------------------------------------------------------------------------------------


def test_delete_removes_the_session(service, principal):
    tenant = principal()
    service.append(tenant, "s1", [Msg("a")], context="c")
    service.delete(tenant, "s1")
    memory = service.read(tenant, "s1")
    assert memory.view.messages_json == [] and memory.view.context is None
    assert service.list_sessions(tenant, page=1, size=10) == []


def test_deleting_an_unknown_session_is_not_an_error(service, principal):
    service.delete(principal(), "never-written")


# --- single messages ---------------------------------------------------------------------------


def test_get_message_returns_the_messages_api_json(service, principal):
    tenant = principal()
    service.append(tenant, "s1", [Msg("a"), Msg("b", role="AI")])
    message = orjson.loads(service.get_message(tenant, "s1", 2))
    assert (message["id"], message["role"], message["content"]) == (2, "AI", "b")


@pytest.mark.parametrize("message_id", [0, 3, -1, 10**12])
def test_get_message_not_in_the_window_is_not_found(service, principal, message_id):
    tenant = principal()
    service.append(tenant, "s1", [Msg("a"), Msg("b")])
    with pytest.raises(NotFound) as raised:
        service.get_message(tenant, "s1", message_id)
    assert raised.value.code == "message_not_found"


def test_delete_message_removes_it_from_the_window(service, principal):
    tenant = principal()
    service.append(tenant, "s1", [Msg("a"), Msg("b"), Msg("c")])
    assert service.delete_message(tenant, "s1", 2) is None
    assert contents(service, tenant) == ["c", "a"]
    with pytest.raises(NotFound):
        service.get_message(tenant, "s1", 2)


def test_deleting_a_message_twice_is_not_found_the_second_time(service, principal):
    tenant = principal()
    service.append(tenant, "s1", [Msg("a")])
    service.delete_message(tenant, "s1", 1)
    with pytest.raises(NotFound) as raised:
        service.delete_message(tenant, "s1", 1)
    assert raised.value.code == "message_not_found"


def test_deleting_a_message_id_beyond_32_bits_is_not_found(service, principal):
    tenant = principal()
    service.append(tenant, "s1", [Msg("a")])
    with pytest.raises(NotFound):
        service.delete_message(tenant, "s1", 2**32)


def test_deleting_a_message_of_an_unknown_session_is_not_found(service, principal):
    with pytest.raises(NotFound):
        service.delete_message(principal(), "never-written", 1)


# --- listing and usage -------------------------------------------------------------------------


def test_list_sessions_pages_through_the_sessions_oldest_first(service, principal, monkeypatch):
    tenant = principal()
    wall = int(time.time() * 1000)
    for i in range(5):
        monkeypatch.setattr(store_module, "now_ms", lambda i=i: wall + i)
        service.append(tenant, f"s{i}", [])
    assert service.list_sessions(tenant, page=1, size=2) == ["s0", "s1"]
    assert service.list_sessions(tenant, page=2, size=2) == ["s2", "s3"]
    assert service.list_sessions(tenant, page=3, size=2) == ["s4"]
    assert service.list_sessions(tenant, page=4, size=2) == []


def test_list_sessions_leaves_out_sessions_past_the_tenants_ttl(service, principal, monkeypatch):
    tenant = principal(session_ttl_seconds=60)
    wall = int(time.time() * 1000)
    monkeypatch.setattr(store_module, "now_ms", lambda: wall - 61_000)
    service.append(tenant, "expired", [])
    monkeypatch.setattr(store_module, "now_ms", lambda: wall)
    service.append(tenant, "live", [])
    assert service.list_sessions(tenant, page=1, size=10) == ["live"]


def test_usage_reports_the_sessions_and_the_messages_written(service, principal):
    tenant = principal()
    service.append(tenant, "s1", [Msg("a"), Msg("b")])
    service.append(tenant, "s2", [Msg("c")])
    report = service.usage(TENANT, ttl_seconds=0)
    assert report["tenant_id"] == TENANT
    assert report["sessions"] == 2
    assert report["messages"] == {"total": 3, "today": 3}
    assert report["llm_calls"] == {"total": 0, "today": 0}


def test_usage_of_a_tenant_without_data_is_all_zero(service):
    report = service.usage("nobody", ttl_seconds=0)
    assert report["sessions"] == 0 and report["messages"] == {"total": 0, "today": 0}
