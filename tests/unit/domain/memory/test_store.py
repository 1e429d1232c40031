"""The session store over fakeredis: appends, reads, single messages, deletes, idempotency,
TTLs, the session index, usage counts, fold claims and commits, tenant erasure, and the
Redis errors it turns into the domain's."""

from __future__ import annotations

import time

import fakeredis
import orjson
import pytest
from redis.cluster import RedisCluster

from app.domain.errors import RateLimited, StoreUnavailable
from app.domain.folding.scripts import FoldCommit
from app.domain.folding.store import FoldingStore
from app.domain.memory import store as store_module
from app.domain.memory.store import IDEMPOTENCY_SECONDS, SessionStore
from app.domain.ratelimit.charge import LimitHit, RateCharge
from app.domain.ratelimit.riding import charge_in_store
from app.domain.scheduling.claims import FoldClaim

from .conftest import TENANT, message, messages

T0 = 1_800_000_000_000  # 2027-01-15T08:00:00Z, in ms
DAY_MS = 86_400_000


@pytest.fixture
def clock(monkeypatch):
    """Pins the store's clock; ``clock(ms)`` moves it."""

    def set_time(ms: int) -> None:
        monkeypatch.setattr(store_module, "now_ms", lambda: ms)

    set_time(T0)
    return set_time


def read_json(store, session_id: str = "s1", *, limit: int = 100, tenant_id: str = TENANT) -> list[dict]:
    return [orjson.loads(raw) for raw in store.read(tenant_id, session_id, limit=limit).messages_json]


def ids(store, session_id: str = "s1", tenant_id: str = TENANT) -> list[int]:
    """The window's ids, oldest first."""
    view = store.read(tenant_id, session_id, limit=100_000)
    return [orjson.loads(raw)["id"] for raw in reversed(view.messages_json)]


def listed(store, tenant_id: str = TENANT, *, ttl_seconds: int = 0) -> list[str]:
    return store.list_sessions(tenant_id, offset=0, count=100, ttl_seconds=ttl_seconds)


def session_keys_exist(fake_redis, keyspace, session_id: str = "s1", tenant_id: str = TENANT) -> int:
    return fake_redis.exists(*keyspace.session(tenant_id, session_id).all)


def usage_field(fake_redis, keyspace, field: str, tenant_id: str = TENANT) -> int:
    return int(fake_redis.hget(keyspace.usage(tenant_id), field) or 0)


# --- append ------------------------------------------------------------------------------------


def test_the_first_append_creates_the_session_and_numbers_its_messages_from_one(store):
    result = store.append(TENANT, "s1", messages("a", "b", "c"))
    assert (result.first_id, result.last_id, result.ids) == (1, 3, [1, 2, 3])
    assert result.created and not result.replayed and not result.refused
    assert result.window_length == 3 and result.window_tokens == 30
    assert result.fold_claimed is None, "no claim was asked for"


def test_later_appends_continue_the_numbering_and_do_not_create_again(store):
    store.append(TENANT, "s1", messages("a", "b"))
    result = store.append(TENANT, "s1", messages("c", "d", "e", tokens=7))
    assert result.ids == [3, 4, 5]
    assert not result.created
    assert (result.window_length, result.window_tokens) == (5, 41)
    assert ids(store) == [1, 2, 3, 4, 5]


def test_ids_are_never_reused_after_a_message_is_deleted(store):
    store.append(TENANT, "s1", messages("a", "b", "c"))
    assert store.delete_message(TENANT, "s1", 3)
    assert store.append(TENANT, "s1", messages("d")).ids == [4]


def test_an_appended_message_reads_back_with_every_field(store, clock):
    store.append(TENANT, "s1", [message("hi", role="AI", tokens=9, metadata={"k": ["v", 1]})])
    assert read_json(store) == [
        {
            "id": 1,
            "role": "AI",
            "content": "hi",
            "created_at": "2027-01-15T08:00:00.000Z",
            "token_count": 9,
            "metadata": {"k": ["v", 1]},
        }
    ]


def test_messages_of_one_append_share_its_timestamp(store, clock):
    store.append(TENANT, "s1", messages("a", "b"))
    clock(T0 + 1_234)
    store.append(TENANT, "s1", messages("c"))
    stamps = [m["created_at"] for m in read_json(store)]
    assert stamps == ["2027-01-15T08:00:01.234Z", "2027-01-15T08:00:00.000Z", "2027-01-15T08:00:00.000Z"]


@pytest.mark.parametrize(
    "content",
    ['"quoted"', '","c":"x', ',"r":"AI","n":1}', "🦊 ünïcödé\n\x00", '{"id":99,"r":"x"}', ""],
)
def test_tricky_content_survives_the_append_script(store, content):
    store.append(TENANT, "s1", [message(content, metadata={"r": ',"c":"', "n": content})])
    (stored,) = read_json(store)
    assert stored["content"] == content
    assert stored["metadata"] == {"r": ',"c":"', "n": content}
    assert stored["role"] == "Human" and stored["token_count"] == 10


def test_an_empty_append_creates_the_session_without_messages(fold_store, store, keyspace, fake_redis):
    result = store.append(TENANT, "s1", [])
    assert result.ids == [] and result.created
    assert (result.window_length, result.window_tokens) == (0, 0)
    assert listed(store) == ["s1"]
    assert fold_store.fold_state(TENANT, "s1").gen is not None
    assert usage_field(fake_redis, keyspace, "messages") == 0
    assert store.append(TENANT, "s1", messages("a")).ids == [1]


def test_sessions_and_tenants_are_isolated(store):
    store.append(TENANT, "s1", messages("a", "b"))
    store.append(TENANT, "s2", messages("x"))
    store.append("other", "s1", messages("y"))
    assert [m["content"] for m in read_json(store, "s1")] == ["b", "a"]
    assert [m["content"] for m in read_json(store, "s2")] == ["x"]
    assert [m["content"] for m in read_json(store, "s1", tenant_id="other")] == ["y"]
    assert ids(store, "s2") == [1], "every session numbers its own messages"


@pytest.mark.parametrize("session_id", ["a:b", "{x}", "*", "with space/slash", "ünï🦊", "a%3Ab"])
def test_any_session_id_gets_its_own_keys_and_is_listed_as_given(store, session_id):
    store.append(TENANT, session_id, messages("mine"))
    store.append(TENANT, "a", messages("other"))
    assert [m["content"] for m in read_json(store, session_id)] == ["mine"]
    assert sorted(listed(store)) == sorted([session_id, "a"])


def test_percent_encoding_keeps_lookalike_session_ids_apart(store):
    store.append(TENANT, "a:b", messages("colon"))
    store.append(TENANT, "a%3Ab", messages("escaped"))
    assert [m["content"] for m in read_json(store, "a:b")] == ["colon"]
    assert [m["content"] for m in read_json(store, "a%3Ab")] == ["escaped"]


# --- context (the summary) ---------------------------------------------------------------------


def test_an_append_with_context_replaces_the_summary(store):
    store.append(TENANT, "s1", messages("a"), context="first")
    store.append(TENANT, "s1", [], context='second "summary" ✓')
    assert store.read(TENANT, "s1", limit=10).context == 'second "summary" ✓'


def test_an_append_without_context_keeps_the_summary(store):
    store.append(TENANT, "s1", messages("a"), context="kept")
    store.append(TENANT, "s1", messages("b"))
    assert store.read(TENANT, "s1", limit=10).context == "kept"


def test_an_empty_context_clears_the_summary(store):
    store.append(TENANT, "s1", messages("a"), context="old")
    store.append(TENANT, "s1", [], context="")
    assert store.read(TENANT, "s1", limit=10).context is None


def test_context_can_seed_a_new_session_before_any_message(fold_store, store):
    result = store.append(TENANT, "s1", [], context="seeded")
    assert result.created
    view = store.read(TENANT, "s1", limit=10)
    assert (view.context, view.messages_json, view.window_length) == ("seeded", [], 0)
    assert fold_store.fold_state(TENANT, "s1").summary == "seeded"


# --- read ----------------------------------------------------------------------------------------


def test_read_returns_the_newest_messages_newest_first_and_the_whole_windows_length(store):
    store.append(TENANT, "s1", messages("m1", "m2", "m3", "m4", "m5"))
    view = store.read(TENANT, "s1", limit=3)
    assert [orjson.loads(raw)["id"] for raw in view.messages_json] == [5, 4, 3]
    assert view.window_length == 5


def test_read_with_a_limit_beyond_the_window_returns_all_of_it(store):
    store.append(TENANT, "s1", messages("m1", "m2"))
    assert [m["id"] for m in read_json(store, limit=50)] == [2, 1]


def test_read_of_an_unknown_session_is_empty(store):
    view = store.read(TENANT, "never", limit=10)
    assert (view.messages_json, view.context, view.tokens, view.window_length) == ([], None, 0, 0)


def test_read_reports_the_llm_tokens_spent_on_the_session(store, fake_redis, keyspace):
    store.append(TENANT, "s1", messages("a", "b"))
    assert store.read(TENANT, "s1", limit=10).tokens == 0
    assert fold(store, fake_redis, keyspace, [1], tokens=123) == "ok"
    assert store.read(TENANT, "s1", limit=10).tokens == 123


def test_a_legacy_element_reads_back_as_it_was_stored(store, fake_redis, keyspace):
    legacy = (
        b'{"id":1,"role":"Human","content":"old","created_at":"2025-01-01T00:00:00.000Z","token_count":4}'
    )
    fake_redis.rpush(keyspace.session(TENANT, "s1").window, legacy)
    fake_redis.hset(keyspace.session(TENANT, "s1").meta, mapping={"gen": "g", "next": 1, "wt": 4})
    store.append(TENANT, "s1", messages("new"))
    view = store.read(TENANT, "s1", limit=10)
    assert view.messages_json[1] == legacy
    assert orjson.loads(view.messages_json[0])["id"] == 2
    assert store.get_message(TENANT, "s1", 1) == legacy


# --- single messages ---------------------------------------------------------------------------


def test_get_message_returns_that_message_in_the_api_form(store):
    store.append(TENANT, "s1", messages("a", "b", "c"))
    raw = store.get_message(TENANT, "s1", 2)
    assert raw is not None
    assert raw.startswith(b'{"id":2,"role":"AI","content":"b",')


def test_get_message_is_none_for_an_id_not_in_the_window(store):
    store.append(TENANT, "s1", messages("a"))
    assert store.get_message(TENANT, "s1", 2) is None
    assert store.get_message(TENANT, "s1", 0) is None
    assert store.get_message(TENANT, "s1", -1) is None
    assert store.get_message(TENANT, "unknown", 1) is None
    assert store.get_message("other", "s1", 1) is None, "another tenant's session is another session"


def test_get_message_matches_the_whole_id(store):
    store.append(TENANT, "s1", messages(*(f"m{i}" for i in range(1, 13))))
    assert store.delete_message(TENANT, "s1", 1)
    assert store.get_message(TENANT, "s1", 1) is None, "ids 10, 11 and 12 are not id 1"
    raw = store.get_message(TENANT, "s1", 12)
    assert raw is not None and orjson.loads(raw)["content"] == "m12"


def test_delete_message_removes_only_that_message_and_its_tokens(fold_store, store):
    store.append(TENANT, "s1", [message("a", tokens=3), message("b", tokens=4), message("c", tokens=5)])
    assert store.delete_message(TENANT, "s1", 2) is True
    assert ids(store) == [1, 3]
    assert fold_store.window_stats(TENANT, "s1") == (2, 8)
    assert store.get_message(TENANT, "s1", 2) is None


def test_delete_message_is_false_when_the_message_is_not_there(store):
    store.append(TENANT, "s1", messages("a"))
    assert store.delete_message(TENANT, "s1", 5) is False
    assert store.delete_message(TENANT, "ghost", 1) is False
    assert ids(store) == [1]


def test_a_message_folded_away_can_no_longer_be_got_or_deleted(store, fake_redis, keyspace):
    store.append(TENANT, "s1", messages("a", "b", "c"))
    fold(store, fake_redis, keyspace, [1, 2])
    assert store.get_message(TENANT, "s1", 1) is None
    assert store.delete_message(TENANT, "s1", 1) is False
    assert store.get_message(TENANT, "s1", 3) is not None


# --- delete a session --------------------------------------------------------------------------


def test_delete_session_removes_its_keys_index_entry_and_due_mark(store, fake_redis, keyspace):
    store.append(TENANT, "s1", messages("a", "b"), context="c", idempotency_key="k")
    fake_redis.set(keyspace.session(TENANT, "s1").lock, "held")
    fake_redis.zadd(keyspace.due, {keyspace.due_member(TENANT, "s1"): 1.0})
    store.delete_session(TENANT, "s1")
    assert session_keys_exist(fake_redis, keyspace) == 0
    assert listed(store) == []
    assert fake_redis.zscore(keyspace.due, keyspace.due_member(TENANT, "s1")) is None
    assert store.read(TENANT, "s1", limit=10).window_length == 0


def test_delete_session_leaves_other_sessions_alone(store, fake_redis, keyspace):
    store.append(TENANT, "s1", messages("a"))
    store.append(TENANT, "s2", messages("b"))
    store.append("other", "s1", messages("c"))
    fake_redis.zadd(keyspace.due, {keyspace.due_member(TENANT, "s2"): 1.0})
    store.delete_session(TENANT, "s1")
    assert listed(store) == ["s2"]
    assert ids(store, "s2") == [1]
    assert ids(store, "s1", tenant_id="other") == [1]
    assert fake_redis.zscore(keyspace.due, keyspace.due_member(TENANT, "s2")) == 1.0


def test_deleting_an_unknown_session_is_a_no_op(store):
    store.append(TENANT, "s1", messages("a"))
    store.delete_session(TENANT, "ghost")
    assert listed(store) == ["s1"]


def test_a_recreated_session_starts_over_with_a_new_generation(fold_store, store):
    store.append(TENANT, "s1", messages("a", "b"), context="old summary")
    old_gen = fold_store.fold_state(TENANT, "s1").gen
    store.delete_session(TENANT, "s1")
    result = store.append(TENANT, "s1", messages("c"))
    state = fold_store.fold_state(TENANT, "s1")
    assert result.created and result.ids == [1]
    assert state.gen is not None and state.gen != old_gen
    assert state.summary is None and state.watermark == 0


# --- idempotency -------------------------------------------------------------------------------


def test_a_repeated_idempotency_key_replays_the_first_result_without_writing(store, fake_redis, keyspace):
    first = store.append(TENANT, "s1", messages("a", "b"), idempotency_key="key-1")
    again = store.append(TENANT, "s1", messages("a", "b"), idempotency_key="key-1")
    assert again.replayed and not again.created
    assert again.ids == first.ids == [1, 2]
    assert (again.window_length, again.window_tokens) == (2, 20)
    assert ids(store) == [1, 2]
    assert usage_field(fake_redis, keyspace, "messages") == 2, "a replay is not counted twice"


def test_a_replay_ignores_a_different_body_and_context(store):
    store.append(TENANT, "s1", messages("a"), context="first", idempotency_key="k")
    replay = store.append(TENANT, "s1", messages("x", "y", "z"), context="second", idempotency_key="k")
    assert replay.replayed and replay.ids == [1]
    assert store.read(TENANT, "s1", limit=10).context == "first"
    assert ids(store) == [1]


def test_a_replay_reports_the_window_as_it_is_now(store):
    store.append(TENANT, "s1", messages("a"), idempotency_key="k")
    store.append(TENANT, "s1", messages("b", "c"))
    replay = store.append(TENANT, "s1", messages("a"), idempotency_key="k")
    assert replay.ids == [1]
    assert (replay.window_length, replay.window_tokens) == (3, 30)


def test_different_idempotency_keys_append_separately(store):
    store.append(TENANT, "s1", messages("a"), idempotency_key="k1")
    second = store.append(TENANT, "s1", messages("a"), idempotency_key="k2")
    assert not second.replayed and second.ids == [2]


def test_an_idempotency_key_is_scoped_to_its_session(store):
    store.append(TENANT, "s1", messages("a"), idempotency_key="k")
    other = store.append(TENANT, "s2", messages("a"), idempotency_key="k")
    assert not other.replayed and other.created and other.ids == [1]


def test_an_empty_append_is_replayed_with_no_ids(store):
    store.append(TENANT, "s1", messages("a"))
    store.append(TENANT, "s1", [], context="c", idempotency_key="k")
    replay = store.append(TENANT, "s1", [], context="d", idempotency_key="k")
    assert replay.replayed and replay.ids == []
    assert store.read(TENANT, "s1", limit=1).context == "c"


def test_an_idempotency_key_is_honoured_for_24_hours_then_appends_anew(store, clock):
    store.append(TENANT, "s1", messages("a"), idempotency_key="k")
    clock(T0 + DAY_MS - 1)
    assert store.append(TENANT, "s1", messages("a"), idempotency_key="k").replayed
    clock(T0 + DAY_MS)
    fresh = store.append(TENANT, "s1", messages("a"), idempotency_key="k")
    assert not fresh.replayed and fresh.ids == [2]
    clock(T0 + DAY_MS + 1)
    assert store.append(TENANT, "s1", messages("a"), idempotency_key="k").ids == [2], "recorded anew"


def test_an_idempotency_key_does_not_survive_its_session_being_deleted(store):
    store.append(TENANT, "s1", messages("a", "b"), idempotency_key="k")
    store.delete_session(TENANT, "s1")
    result = store.append(TENANT, "s1", messages("c"), idempotency_key="k")
    assert not result.replayed and result.created and result.ids == [1]


@pytest.mark.parametrize(
    ("ttl", "expected"), [(0, IDEMPOTENCY_SECONDS), (60, 60), (10**6, IDEMPOTENCY_SECONDS)]
)
def test_idempotency_records_live_a_day_or_the_sessions_ttl_if_shorter(
    store, fake_redis, keyspace, ttl, expected
):
    store.append(TENANT, "s1", messages("a"), ttl_seconds=ttl, idempotency_key="k")
    assert fake_redis.ttl(keyspace.session(TENANT, "s1").idempotency) == expected


def test_no_idempotency_record_is_kept_without_a_key(store, fake_redis, keyspace):
    store.append(TENANT, "s1", messages("a"))
    assert not fake_redis.exists(keyspace.session(TENANT, "s1").idempotency)


def test_stale_idempotency_records_are_dropped_once_there_are_many(store, fake_redis, keyspace, clock):
    idem = keyspace.session(TENANT, "s1").idempotency
    for i in range(256):
        store.append(TENANT, "s1", [], idempotency_key=f"old-{i}")
    clock(T0 + DAY_MS - 1)
    store.append(TENANT, "s1", [], idempotency_key="recent")
    assert fake_redis.hlen(idem) == 257, "nothing is past its 24 h yet"
    clock(T0 + DAY_MS)
    store.append(TENANT, "s1", [], idempotency_key="new")
    assert fake_redis.hlen(idem) == 2, "only the records younger than 24 h remain"
    assert store.append(TENANT, "s1", messages("a"), idempotency_key="recent").replayed


# --- TTL -----------------------------------------------------------------------------------------


def test_a_ttl_expires_the_window_and_meta_and_every_write_refreshes_it(store, fake_redis, keyspace):
    keys = keyspace.session(TENANT, "s1")
    store.append(TENANT, "s1", messages("a"), ttl_seconds=100)
    assert fake_redis.ttl(keys.window) == 100 and fake_redis.ttl(keys.meta) == 100
    fake_redis.expire(keys.window, 5)
    fake_redis.expire(keys.meta, 5)
    store.append(TENANT, "s1", [], ttl_seconds=100, context="x")
    assert fake_redis.ttl(keys.window) == 100 and fake_redis.ttl(keys.meta) == 100


def test_without_a_ttl_a_session_is_kept_even_if_it_had_one_before(store, fake_redis, keyspace):
    keys = keyspace.session(TENANT, "s1")
    store.append(TENANT, "s1", messages("a"), ttl_seconds=100)
    store.append(TENANT, "s1", messages("b"))
    assert fake_redis.ttl(keys.window) == -1 and fake_redis.ttl(keys.meta) == -1


def test_an_expired_session_reads_empty_and_is_created_anew(store, fake_redis, keyspace):
    store.append(TENANT, "s1", messages("a"), ttl_seconds=100)
    keys = keyspace.session(TENANT, "s1")
    fake_redis.delete(keys.window, keys.meta)  # what the expiry does
    assert store.read(TENANT, "s1", limit=10).window_length == 0
    result = store.append(TENANT, "s1", messages("b"), ttl_seconds=100)
    assert result.created and result.ids == [1]


# --- may_create (the session quota) --------------------------------------------------------------


def test_an_append_that_may_not_create_is_refused_for_a_new_session_and_writes_nothing(
    store, fake_redis, keyspace
):
    result = store.append(TENANT, "s1", messages("a"), may_create=False, idempotency_key="k")
    assert result.refused and not result.created and result.window_length == 0
    assert session_keys_exist(fake_redis, keyspace) == 0
    assert listed(store) == []
    assert usage_field(fake_redis, keyspace, "messages") == 0


def test_an_append_that_may_not_create_still_writes_to_an_existing_session(store, clock):
    store.append(TENANT, "s1", messages("a"))
    store.append(TENANT, "s2", messages("b"))
    clock(T0 + 1000)
    result = store.append(TENANT, "s1", messages("c"), may_create=False)
    assert not result.refused and result.ids == [2]
    assert listed(store) == ["s2", "s1"], "its index entry moved to the last write"


# --- the session index ---------------------------------------------------------------------------


def test_sessions_are_listed_by_last_write_oldest_first(store, clock):
    for i, session_id in enumerate(["a", "b", "c"]):
        clock(T0 + i)
        store.append(TENANT, session_id, messages("x"))
    clock(T0 + 10)
    store.append(TENANT, "a", messages("y"))
    assert listed(store) == ["b", "c", "a"]
    assert store.count_sessions(TENANT) == 3


def test_listing_pages_through_the_index(store, clock):
    for i in range(5):
        clock(T0 + i)
        store.append(TENANT, f"s{i}", [])
    assert store.list_sessions(TENANT, offset=0, count=2) == ["s0", "s1"]
    assert store.list_sessions(TENANT, offset=2, count=2) == ["s2", "s3"]
    assert store.list_sessions(TENANT, offset=4, count=2) == ["s4"]
    assert store.list_sessions(TENANT, offset=6, count=2) == []


def test_listing_and_counting_are_per_tenant(store):
    store.append(TENANT, "s1", [])
    store.append("other", "s2", [])
    assert listed(store) == ["s1"] and listed(store, "other") == ["s2"]
    assert store.count_sessions(TENANT) == 1 and store.count_sessions("nobody") == 0


def test_sessions_past_the_ttl_are_pruned_from_the_index_before_listing(store, fake_redis, keyspace, clock):
    wall = int(time.time() * 1000)  # the prune compares the index's scores with the wall clock
    clock(wall - 2 * 3_600_000)
    store.append(TENANT, "old", [])
    clock(wall - 60_000)
    store.append(TENANT, "recent", [])
    assert listed(store, ttl_seconds=3600) == ["recent"]
    assert fake_redis.zscore(keyspace.sessions_index(TENANT), "old") is None, "pruned, not just hidden"


def test_counting_prunes_expired_sessions_too(store, clock):
    wall = int(time.time() * 1000)
    clock(wall - 2 * 3_600_000)
    store.append(TENANT, "old", [])
    clock(wall)
    store.append(TENANT, "new", [])
    assert store.count_sessions(TENANT) == 2, "without a TTL nothing is pruned"
    assert store.count_sessions(TENANT, ttl_seconds=3600) == 1
    assert listed(store) == ["new"]


# --- usage ---------------------------------------------------------------------------------------


def test_appended_messages_are_counted_for_their_tenant_today_and_in_total(store, usage):
    store.append(TENANT, "s1", messages("a", "b"))
    store.append(TENANT, "s2", messages("c"))
    store.append("other", "s1", messages("d"))
    assert usage.report(TENANT, sessions=0)["messages"] == {"total": 3, "today": 3}
    assert usage.report("other", sessions=0)["messages"] == {"total": 1, "today": 1}


def test_messages_are_counted_on_the_day_of_the_write(store, fake_redis, keyspace, clock):
    store.append(TENANT, "s1", messages("a"))
    clock(T0 + DAY_MS)
    store.append(TENANT, "s1", messages("b", "c"))
    assert usage_field(fake_redis, keyspace, "messages:2027-01-15") == 1
    assert usage_field(fake_redis, keyspace, "messages:2027-01-16") == 2
    assert usage_field(fake_redis, keyspace, "messages") == 3


# --- the fold claim inside the append ------------------------------------------------------------


def claim(keyspace, *, has_slot: bool = True, now: float = 100.0) -> FoldClaim:
    return FoldClaim(keyspace.due_member(TENANT, "s1"), now, now + 300.0, has_slot)


def due_score(fake_redis, keyspace) -> float | None:
    return fake_redis.zscore(keyspace.due, keyspace.due_member(TENANT, "s1"))


def test_an_append_that_overflows_the_window_claims_its_fold(store, fake_redis, keyspace):
    result = store.append(TENANT, "s1", messages("a", "b", "c"), fold_claim=claim(keyspace), window_size=2)
    assert result.fold_claimed is True
    assert due_score(fake_redis, keyspace) == 400.0, "leased to the caller"


def test_an_append_within_the_window_claims_nothing(store, fake_redis, keyspace):
    result = store.append(TENANT, "s1", messages("a", "b"), fold_claim=claim(keyspace), window_size=2)
    assert result.fold_claimed is False
    assert due_score(fake_redis, keyspace) is None


def test_an_append_over_the_token_bound_claims_its_fold(store, fake_redis, keyspace):
    result = store.append(
        TENANT, "s1", messages("a", tokens=65), fold_claim=claim(keyspace), window_size=10, window_tokens=64
    )
    assert result.fold_claimed is True
    within = store.append(
        TENANT, "s2", messages("a", tokens=64), fold_claim=claim(keyspace), window_size=10, window_tokens=64
    )
    assert within.fold_claimed is False


def test_without_a_free_slot_the_overflowing_session_is_only_marked_due(store, fake_redis, keyspace):
    result = store.append(
        TENANT, "s1", messages("a", "b", "c"), fold_claim=claim(keyspace, has_slot=False), window_size=2
    )
    assert result.fold_claimed is False
    assert due_score(fake_redis, keyspace) == 100.0, "due now, for a sweeper"


def test_a_replayed_append_claims_no_fold(store, fake_redis, keyspace):
    store.append(TENANT, "s1", messages("a", "b", "c"), idempotency_key="k")
    replay = store.append(
        TENANT, "s1", messages("a", "b", "c"), idempotency_key="k", fold_claim=claim(keyspace), window_size=2
    )
    assert replay.replayed and replay.fold_claimed is False
    assert due_score(fake_redis, keyspace) is None


# --- folding: state, commit, tokens ------------------------------------------------------------


def fold(
    store,
    fake_redis,
    keyspace,
    folded: list[int],
    *,
    summary: str | None = "S",
    tokens: int = 5,
    archive=False,
):
    """Begin a fold and commit ``folded`` (10 tokens each) from the state it read."""
    fold_store = FoldingStore(fake_redis, keyspace)
    state = fold_store.begin_fold(TENANT, "s1", lock_token="tok", lock_seconds=30)
    assert state is not None and state.gen is not None
    commit = FoldCommit(
        state.gen, state.watermark, tokens, summary, 10 * len(folded), folded, archive=archive
    )
    return fold_store.finish_fold(
        TENANT, "s1", commit, lock_token="tok", window_size=1000, window_tokens=None
    ).status


def test_a_committed_fold_shows_in_reads_and_window_stats(fold_store, store, fake_redis, keyspace):
    store.append(TENANT, "s1", messages("a", "b", "c", "d"))
    assert fold(store, fake_redis, keyspace, [1, 2], summary="a and b", tokens=42) == "ok"
    view = store.read(TENANT, "s1", limit=10)
    assert [orjson.loads(raw)["id"] for raw in view.messages_json] == [4, 3]
    assert (view.context, view.tokens, view.window_length) == ("a and b", 42, 2)
    assert fold_store.window_stats(TENANT, "s1") == (2, 20)
    assert fold_store.fold_state(TENANT, "s1").watermark == 2


def test_appends_after_a_fold_continue_the_numbering(store, fake_redis, keyspace):
    store.append(TENANT, "s1", messages("a", "b", "c"))
    assert fold(store, fake_redis, keyspace, [1, 2]) == "ok"
    assert store.append(TENANT, "s1", messages("d")).ids == [4]
    assert ids(store) == [3, 4]


# --- the archive (long-term memory) and the history ---------------------------------------------


def archived_ids(fake_redis, keyspace, session_id: str = "s1") -> list[int]:
    return [
        int(score)
        for _, score in fake_redis.zrange(
            keyspace.session(TENANT, session_id).archive, 0, -1, withscores=True
        )
    ]


def history_ids(store, *, before: int | None = None, limit: int = 100) -> tuple[list[int], int | None]:
    page = store.history(TENANT, "s1", before=before, limit=limit)
    return [orjson.loads(raw)["id"] for raw in page.messages_json], page.next_before


def test_a_fold_with_the_archive_keeps_the_folded_messages_out_of_the_window(
    fold_store, store, fake_redis, keyspace
):
    store.append(TENANT, "s1", messages("a", "b", "c", "d"))
    assert fold(store, fake_redis, keyspace, [1, 2], archive=True) == "ok"
    assert archived_ids(fake_redis, keyspace) == [1, 2]
    assert ids(store) == [3, 4]
    assert fold_store.window_stats(TENANT, "s1") == (2, 20)
    assert store.read(TENANT, "s1", limit=10).window_length == 2


def test_a_fold_without_the_archive_keeps_nothing(store, fake_redis, keyspace):
    store.append(TENANT, "s1", messages("a", "b", "c"))
    assert fold(store, fake_redis, keyspace, [1, 2], archive=False) == "ok"
    assert archived_ids(fake_redis, keyspace) == []
    assert history_ids(store) == ([3], None)


def test_an_archived_message_can_still_be_got_in_the_api_form(store, fake_redis, keyspace):
    store.append(TENANT, "s1", [message('quote " and ,"c":"', metadata={"k": 1}), message("b")])
    fold(store, fake_redis, keyspace, [1], archive=True)
    raw = store.get_message(TENANT, "s1", 1)
    assert raw is not None
    assert orjson.loads(raw)["content"] == 'quote " and ,"c":"'
    assert raw.startswith(b'{"id":1,"role":"Human","content":')


def test_an_archived_message_can_be_deleted_without_touching_the_windows_tokens(
    fold_store, store, fake_redis, keyspace
):
    store.append(TENANT, "s1", messages("a", "b", "c"))
    fold(store, fake_redis, keyspace, [1, 2], archive=True)
    assert store.delete_message(TENANT, "s1", 1) is True
    assert store.get_message(TENANT, "s1", 1) is None
    assert store.delete_message(TENANT, "s1", 1) is False
    assert archived_ids(fake_redis, keyspace) == [2]
    assert fold_store.window_stats(TENANT, "s1") == (1, 10)


def test_the_archive_shares_the_sessions_ttl(store, fake_redis, keyspace):
    archive = keyspace.session(TENANT, "s1").archive
    store.append(TENANT, "s1", messages("a", "b", "c"), ttl_seconds=100)
    fold(store, fake_redis, keyspace, [1, 2], archive=True)
    assert 99 <= fake_redis.ttl(archive) <= 100
    fake_redis.expire(archive, 5)
    store.append(TENANT, "s1", messages("d"), ttl_seconds=100)
    assert fake_redis.ttl(archive) == 100, "every write refreshes it with the window and meta"
    store.append(TENANT, "s1", messages("e"))
    assert fake_redis.ttl(archive) == -1, "without a TTL it is kept"


def test_deleting_a_session_deletes_its_archive(store, fake_redis, keyspace):
    store.append(TENANT, "s1", messages("a", "b", "c"))
    fold(store, fake_redis, keyspace, [1, 2], archive=True)
    store.delete_session(TENANT, "s1")
    assert archived_ids(fake_redis, keyspace) == []
    store.append(TENANT, "s1", messages("new"))
    assert history_ids(store) == ([1], None)


def test_history_lists_window_and_archive_newest_first(store, fake_redis, keyspace):
    store.append(TENANT, "s1", messages("a", "b", "c", "d", "e"))
    fold(store, fake_redis, keyspace, [1, 2, 3], archive=True)
    assert history_ids(store) == ([5, 4, 3, 2, 1], None)


def test_history_pages_backwards_across_the_window_and_the_archive(store, fake_redis, keyspace):
    store.append(TENANT, "s1", messages("a", "b", "c", "d", "e"))
    fold(store, fake_redis, keyspace, [1, 2, 3], archive=True)
    assert history_ids(store, limit=2) == ([5, 4], 4)
    assert history_ids(store, before=4, limit=2) == ([3, 2], 2)
    assert history_ids(store, before=2, limit=2) == ([1], None)


def test_history_reports_no_next_page_when_the_last_page_is_exactly_full(store):
    store.append(TENANT, "s1", messages("a", "b", "c", "d"))
    assert history_ids(store, limit=2) == ([4, 3], 3)
    assert history_ids(store, before=3, limit=2) == ([2, 1], None)


def test_history_before_an_id_inside_the_window_starts_below_it(store):
    store.append(TENANT, "s1", messages("a", "b", "c", "d"))
    assert history_ids(store, before=3) == ([2, 1], None)
    assert history_ids(store, before=1) == ([], None)


def test_history_of_an_unknown_session_is_empty(store):
    assert store.history(TENANT, "ghost", before=None, limit=10).messages_json == []
    assert store.history(TENANT, "ghost", before=None, limit=10).next_before is None


def test_history_skips_deleted_messages(store, fake_redis, keyspace):
    store.append(TENANT, "s1", messages("a", "b", "c", "d"))
    fold(store, fake_redis, keyspace, [1, 2], archive=True)
    store.delete_message(TENANT, "s1", 2)
    store.delete_message(TENANT, "s1", 4)
    assert history_ids(store) == ([3, 1], None)


def index_due_score(fake_redis, keyspace, session_id: str = "s1", tenant_id: str = TENANT) -> float | None:
    return fake_redis.zscore(keyspace.index_due, keyspace.due_member(tenant_id, session_id))


def test_an_indexed_append_marks_the_session_due_for_indexing_once(store, fake_redis, keyspace, clock):
    store.append(TENANT, "s1", messages("a"), indexed=True)
    assert index_due_score(fake_redis, keyspace) == T0 / 1000
    clock(T0 + 5_000)
    store.append(TENANT, "s1", messages("b"), indexed=True)
    assert index_due_score(fake_redis, keyspace) == T0 / 1000, "the earliest mark stays"


def test_appends_without_indexing_or_without_messages_do_not_mark_for_indexing(store, fake_redis, keyspace):
    store.append(TENANT, "s1", messages("a"))
    store.append(TENANT, "s2", [], context="c", indexed=True)
    assert fake_redis.zcard(keyspace.index_due) == 0


def test_deleting_a_session_drops_its_indexing_mark(store, fake_redis, keyspace):
    store.append(TENANT, "s1", messages("a"), indexed=True)
    store.append(TENANT, "s2", messages("a"), indexed=True)
    store.delete_session(TENANT, "s1")
    assert index_due_score(fake_redis, keyspace) is None
    assert index_due_score(fake_redis, keyspace, "s2") is not None


def test_read_counts_the_messages_given_ids_but_not_indexed_yet(store):
    store.append(TENANT, "s1", messages("a", "b", "c"), indexed=True)
    store.delete_message(TENANT, "s1", 2)
    assert store.read(TENANT, "s1", limit=10).unindexed == 3, "deleted ones included"
    assert store.read(TENANT, "ghost", limit=10).unindexed == 0


# --- erasing a tenant ----------------------------------------------------------------------------


def test_erase_tenant_data_removes_every_key_of_the_tenant_and_its_due_marks(store, fake_redis, keyspace):
    for session_id in ["s1", "s2", "a:b"]:
        store.append(TENANT, session_id, messages("x"), idempotency_key="k")
    fake_redis.set(f"LIMITS:{{LIMITER/{keyspace.rate_limit_prefix}/t:{TENANT}/1/minute", 3)
    fake_redis.zadd(keyspace.due, {keyspace.due_member(TENANT, "s1"): 1.0, "other:s1": 2.0})
    fake_redis.zadd(keyspace.index_due, {keyspace.due_member(TENANT, "s2"): 1.0, "other:s1": 2.0})
    removed = store.erase_tenant_data(TENANT, batch=2)
    # 3 sessions x (window, meta, idempotency) + the index + the usage hash + a rate counter
    assert removed == 12
    assert fake_redis.keys(f"*{TENANT}*") == []
    assert fake_redis.zrange(keyspace.due, 0, -1) == [b"other:s1"]
    assert fake_redis.zrange(keyspace.index_due, 0, -1) == [b"other:s1"]
    assert listed(store) == [] and store.count_sessions(TENANT) == 0


def test_erase_tenant_data_spares_tenants_whose_id_starts_the_same(store, fake_redis, keyspace):
    store.append(TENANT, "s1", messages("x"))
    for neighbour in [f"{TENANT}2", f"{TENANT}-x"]:
        store.append(neighbour, "s1", messages("y"))
        fake_redis.zadd(keyspace.due, {keyspace.due_member(neighbour, "s1"): 1.0})
    store.erase_tenant_data(TENANT)
    for neighbour in [f"{TENANT}2", f"{TENANT}-x"]:
        assert ids(store, "s1", tenant_id=neighbour) == [1]
        assert listed(store, neighbour) == ["s1"]
        assert fake_redis.zscore(keyspace.due, keyspace.due_member(neighbour, "s1")) == 1.0


def test_erasing_a_tenant_without_data_removes_nothing(store):
    assert store.erase_tenant_data("nobody") == 0


# --- the rate charge riding on the store call ----------------------------------------------------


def one_request_per_minute(keyspace) -> RateCharge:
    base = f"LIMITS:LIMITER/{keyspace.rate_limit_prefix}/t:{TENANT}/1/1/minute"
    return RateCharge((LimitHit(f"{base}/previous", base, amount=1, expiry=60),))


def test_a_refused_rate_charge_fails_the_append_and_writes_nothing(store, fake_redis, keyspace):
    charge = one_request_per_minute(keyspace)
    with charge_in_store(charge) as ride:
        store.append(TENANT, "s1", messages("a"))
    assert ride.window is not None and ride.window.admitted
    with charge_in_store(charge) as ride, pytest.raises(RateLimited):
        store.append(TENANT, "s1", messages("b"), context="no")
    assert ride.window is not None and not ride.window.admitted
    assert ids(store) == [1]
    assert store.read(TENANT, "s1", limit=10).context is None
    assert usage_field(fake_redis, keyspace, "messages") == 1


def test_a_refused_rate_charge_fails_the_read(store, keyspace):
    store.append(TENANT, "s1", messages("a"))
    charge = one_request_per_minute(keyspace)
    with charge_in_store(charge):
        assert store.read(TENANT, "s1", limit=10).window_length == 1
    with charge_in_store(charge), pytest.raises(RateLimited):
        store.read(TENANT, "s1", limit=10)


def test_a_ride_is_charged_once_per_request(store, keyspace):
    with charge_in_store(one_request_per_minute(keyspace)) as ride:
        store.append(TENANT, "s1", messages("a"))
        store.append(TENANT, "s1", messages("b"))  # e.g. a fold's write in the same request
        store.read(TENANT, "s1", limit=10)
    assert ride.taken and ride.window is not None and ride.window.admitted
    assert ids(store) == [1, 2]


def test_the_read_pipeline_survives_a_flushed_script_cache(store, fake_redis, keyspace):
    store.append(TENANT, "s1", messages("a"))
    fake_redis.script_flush()
    with charge_in_store(one_request_per_minute(keyspace)) as ride:
        assert store.read(TENANT, "s1", limit=10).window_length == 1
    assert ride.window is not None and ride.window.admitted and ride.window.current_count == 1


def test_appends_survive_a_flushed_script_cache(store, fake_redis):
    store.append(TENANT, "s1", messages("a"))
    fake_redis.script_flush()
    assert store.append(TENANT, "s1", messages("b")).ids == [2]
    assert store.delete_message(TENANT, "s1", 1)
    assert ids(store) == [2]


# --- Redis Cluster: the tenant-wide bookkeeping in a second round trip ---------------------------


class ClusterLikeFakeRedis(fakeredis.FakeRedis):
    """fakeredis that the store takes for a RedisCluster client (``is_cluster``)."""

    @property
    def __class__(self):  # type: ignore[override]
        return RedisCluster


@pytest.fixture
def cluster_store(keyspace) -> tuple[SessionStore, fakeredis.FakeRedis]:
    client = ClusterLikeFakeRedis(server=fakeredis.FakeServer())
    return SessionStore(client, keyspace), client


def test_on_a_cluster_the_append_still_indexes_the_session_and_counts_its_messages(cluster_store, keyspace):
    store, client = cluster_store
    result = store.append(TENANT, "s1", messages("a", "b"))
    assert result.created and result.ids == [1, 2]
    assert listed(store) == ["s1"]
    assert int(client.hget(keyspace.usage(TENANT), "messages")) == 2


def test_on_a_cluster_an_indexed_append_marks_the_session_for_indexing_afterwards(cluster_store, keyspace):
    store, client = cluster_store
    store.append(TENANT, "s1", messages("a"), indexed=True)
    assert client.zscore(keyspace.index_due, keyspace.due_member(TENANT, "s1")) is not None


def test_on_a_cluster_the_append_never_claims_a_fold_itself(cluster_store, keyspace):
    store, client = cluster_store
    result = store.append(TENANT, "s1", messages("a", "b", "c"), fold_claim=claim(keyspace), window_size=2)
    assert result.fold_claimed is None, "the caller claims afterwards"
    assert client.zcard(keyspace.due) == 0


def test_on_a_cluster_refused_and_replayed_appends_leave_the_index_and_usage_alone(cluster_store, keyspace):
    store, client = cluster_store
    assert store.append(TENANT, "new", messages("a"), may_create=False).refused
    store.append(TENANT, "s1", messages("a"), idempotency_key="k")
    assert store.append(TENANT, "s1", messages("a"), idempotency_key="k").replayed
    assert listed(store) == ["s1"]
    assert int(client.hget(keyspace.usage(TENANT), "messages")) == 1


def test_on_a_cluster_the_ride_is_left_for_the_limiter(cluster_store, keyspace):
    store, _ = cluster_store
    with charge_in_store(one_request_per_minute(keyspace)) as ride:
        store.append(TENANT, "s1", messages("a"))
        store.read(TENANT, "s1", limit=10)
    assert not ride.taken and ride.window is None


# --- outages -------------------------------------------------------------------------------------


def test_every_store_operation_raises_store_unavailable_when_redis_is_down(keyspace):
    server = fakeredis.FakeServer()
    store = SessionStore(fakeredis.FakeRedis(server=server), keyspace)
    store.append(TENANT, "s1", messages("a"))
    server.connected = False
    calls = [
        lambda: store.append(TENANT, "s1", messages("b")),
        lambda: store.read(TENANT, "s1", limit=10),
        lambda: store.get_message(TENANT, "s1", 1),
        lambda: store.delete_message(TENANT, "s1", 1),
        lambda: store.delete_session(TENANT, "s1"),
        lambda: store.list_sessions(TENANT, offset=0, count=10),
        lambda: store.count_sessions(TENANT),
        lambda: store.erase_tenant_data(TENANT),
        lambda: store.ping(),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable) as raised:
            call()
        assert raised.value.cause == "ConnectionError"
        assert raised.value.code == "store_unavailable"
    server.connected = True
    assert ids(store) == [1], "nothing was written while Redis was down"


def test_ping_answers_true_when_redis_answers(store):
    assert store.ping() is True
