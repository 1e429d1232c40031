"""Tenant isolation under attack (issue 7 §3; api.md §1, §4).

Tenant A ("acme") stores conversations; tenant B ("globex") holds a valid key of its own
and attacks A through every tenant route, under the root and both MotorHead prefixes:
with A's session ids and message ids, with ids crafted to collide in Redis key space, and
with confusing credential headers. Every test ends with the same proof: A's data — as A
sees it through the API *and* as Redis stores it — is byte-identical to before the attack,
and nothing B received contains any of A's content or credentials.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from app.domain.keyspace import decode_session_id
from tests.conftest import ADMIN, ADMIN_TOKEN
from tests.security.conftest import (
    PREFIXES,
    api_snapshot,
    memory_url,
    redis_snapshot,
    search_hits,
    unwrap,
)

A_MARK = "A-SECRET"

# A's sessions: ordinary and odd ids, each with messages, metadata, a summary and an
# Idempotency-Key that B reuses.
A_SESSIONS = [
    "s1",
    "chat:42",
    "{acme:s1}",
    "a/b",
    "2024-05-01T12:00:00.000Z",
    "日本語のセッション",
    "x" * 256,
]
SHARED_IDEMPOTENCY_KEY = "retry-1"

# Ids a malicious tenant might hope collide with A's keys or escape its own hash tag.
CRAFTED = [
    ":",
    "{",
    "}",
    "*",
    "?",
    "%",
    "%3A",
    "%25",
    "%7B",
    "..",
    ".",
    "/",
    "//",
    "../acme",
    "acme",
    "acme:s1",
    "{acme:s1}",
    "{acme:s1}:w",
    "s1}:w",
    "s1}:m",
    "s1}:i",
    "}:sessions",
    "{acme}",
    "{acme}:sessions",
    "acme}:usage",
    "acme:*",
    "*acme*",
    "rc:{acme:s1}:w",
    "rc:tenant:acme",
    "s1\\",
    "s1 ",
    " s1",
    "S1",
    "ｓ１",  # fullwidth: NFKC would make it "s1"; ids are never normalized
    "s\u0131",  # dotless i
    "e\u0301",
    "😀",
    "é" * 128,  # 256 bytes of UTF-8
    "y" * 256,
    # RediSearch tag and query syntax (a shared search index filters by tenant and session).
    "}|{",
    "s1|s2",
    "@s:{s1}",
    "@t:{acme}",
    "(s1)",
    "-s1",
    "a b c",
    "s1\\*",
    "$q",
    "=>[KNN 10 @v $q]",
]
TARGETS = list(dict.fromkeys(A_SESSIONS + CRAFTED))


def seed_tenant_a(client, a) -> None:
    for index, session in enumerate(A_SESSIONS):
        body = {
            "messages": [
                {"role": "Human", "content": f"{A_MARK}-{index}-q", "metadata": {"m": f"{A_MARK}-{index}"}},
                {"role": "AI", "content": f"{A_MARK}-{index}-a"},
            ],
            "context": f"{A_MARK}-{index}-summary",
        }
        headers = a.headers | {"Idempotency-Key": SHARED_IDEMPOTENCY_KEY}
        response = client.post(memory_url("", session), json=body, headers=headers)
        assert response.status_code == 200 and response.json["message_ids"] == [1, 2], session


class Attacker:
    """B's client: records every byte B receives and insists no request is a 5xx."""

    def __init__(self, client, headers: dict[str, str], addresses) -> None:
        self.client = client
        self.headers = headers
        self.addresses = addresses
        self.received: list[bytes] = []

    def send(self, method: str, url: str, *, headers=None, **kwargs):
        response = getattr(self.client, method)(
            url,
            headers=self.headers if headers is None else headers,
            environ_base={"REMOTE_ADDR": next(self.addresses)},
            **kwargs,
        )
        assert response.status_code < 500, (method, url, response.get_data())
        self.received.append(response.get_data())
        self.received.extend(f"{k}: {v}".encode() for k, v in response.headers.items())
        return response

    def assert_saw_nothing_of(self, tenant) -> None:
        forbidden = [A_MARK.encode(), tenant.key.encode(), tenant.key_id.encode(), tenant.key[-43:].encode()]
        for received in self.received:
            for needle in forbidden:
                assert needle not in received, (needle, received[:300])


def wait_indexed(client, tenant, redis_client, sessions=A_SESSIONS) -> None:
    """Until the tenant's messages are all searchable and no index pass of its is due or
    running, so nothing of it changes by itself while the other attacks."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        pending = sum(
            client.get(memory_url("", s), headers=tenant.headers).json["pending_index"] for s in sessions
        )
        mine = f"{tenant.id}:".encode()
        due = [m for m in redis_client.zrange("rc:due:index", 0, -1) if m.startswith(mine)]
        if not pending and not due:
            return
        time.sleep(0.05)
    raise AssertionError(f"{tenant.id}'s messages were not indexed in time")


@pytest.fixture
def attack_setup(client, tenant, other_tenant, redis_client, addresses):
    """A seeded with data, indexed and snapshotted; B ready to attack."""
    seed_tenant_a(client, tenant)
    wait_indexed(client, tenant, redis_client)
    assert search_hits(client, tenant.headers, A_MARK), "A finds its own messages"
    before = (api_snapshot(client, tenant.headers, A_SESSIONS), redis_snapshot(redis_client, "acme"))
    assert any(A_MARK.encode() in body for body in before[0].values())
    attacker = Attacker(client, other_tenant.headers, addresses)

    def a_is_untouched() -> None:
        after = (api_snapshot(client, tenant.headers, A_SESSIONS), redis_snapshot(redis_client, "acme"))
        assert after[0] == before[0], "A's API view changed"
        assert after[1] == before[1], "A's stored keys changed"
        attacker.assert_saw_nothing_of(tenant)

    return attacker, a_is_untouched


def attack_one_session(b: Attacker, prefix: str, session: str, index: int) -> None:
    """Every session-level route, with the id A uses (or a crafted one) and A's message ids."""
    read = b.send("get", memory_url(prefix, session))
    assert read.status_code == 200
    assert unwrap(prefix, read.json) == {
        "messages": [],
        "context": None,
        "tokens": 0,
        "pending_summary": 0,
        "pending_index": 0,
    }
    for message_id in (0, 1, 2, 3, 2**31):
        single = b.send("get", memory_url(prefix, session, f"messages/{message_id}"))
        assert single.status_code == 404, (session, message_id)
        assert b.send("delete", memory_url(prefix, session, f"messages/{message_id}")).status_code == 404
    for mode in ("auto", "keyword"):
        retrieval = b.send(
            "post", memory_url(prefix, session, "retrieval"), json={"text": A_MARK, "mode": mode}
        )
        assert retrieval.status_code == 200 and unwrap(prefix, retrieval.json) == [], (session, mode)
    history = b.send("get", memory_url(prefix, session, "messages?limit=100"))
    assert unwrap(prefix, history.json) == {"messages": [], "next_before": None}
    context = b.send("get", memory_url(prefix, session, "context?model=gpt-4o&max_tokens=10000&query=A"))
    assert unwrap(prefix, context.json)["messages"] == []
    searched = b.send("post", f"{prefix}/search", json={"text": A_MARK, "session_ids": [session]})
    assert searched.status_code == 200 and unwrap(prefix, searched.json) == []

    # B writes under the same id, reusing A's Idempotency-Key: B's own, fresh session.
    mine = f"B-{index}"
    written = b.send(
        "post",
        memory_url(prefix, session),
        json={"messages": [{"role": "Human", "content": mine}], "context": f"{mine}-summary"},
        headers=b.headers | {"Idempotency-Key": SHARED_IDEMPOTENCY_KEY},
    )
    assert written.status_code == 200, written.get_data()
    assert unwrap(prefix, written.json) == {"status": "Ok", "message_ids": [1]}
    assert "Idempotent-Replayed" not in written.headers
    body = unwrap(prefix, b.send("get", memory_url(prefix, session)).json)
    assert [m["content"] for m in body["messages"]] == [mine]
    assert body["context"] == f"{mine}-summary"
    assert unwrap(prefix, b.send("get", memory_url(prefix, session, "messages/1")).json)["content"] == mine
    assert b.send("get", memory_url(prefix, session, "messages/2")).status_code == 404
    assert b.send("delete", memory_url(prefix, session, "messages/1")).status_code == 200
    assert b.send("delete", memory_url(prefix, session, "messages/1")).status_code == 404
    assert b.send("delete", memory_url(prefix, session)).status_code == 200
    assert unwrap(prefix, b.send("get", memory_url(prefix, session)).json)["messages"] == []


@pytest.mark.parametrize("prefix", PREFIXES)
def test_b_using_a_s_and_crafted_session_and_message_ids_on_every_route_never_touches_a(
    attack_setup, other_tenant, prefix
):
    b, a_is_untouched = attack_setup
    for index, session in enumerate(TARGETS):
        attack_one_session(b, prefix, session, index)

    # Tenant-wide routes answer about B alone, whatever paging or MotorHead namespace B asks.
    own = b.send("post", memory_url(prefix, "b-own"), json={"messages": [{"role": "AI", "content": "b"}]})
    assert own.status_code == 200
    for query in ("", "?page=1&size=100", "?namespace=acme", "?namespace=acme&size=100", "?page=2&size=1"):
        listed = unwrap(prefix, b.send("get", f"{prefix}/sessions{query}").json)
        assert listed == ([] if "page=2" in query else ["b-own"]), query
    current = unwrap(prefix, b.send("get", f"{prefix}/keys/current").json)
    assert current == {"tenant_id": "globex", "key_id": other_tenant.key_id}
    for body in (
        {"text": A_MARK},
        {"text": A_MARK, "k": 50, "session_ids": A_SESSIONS},
        {"text": "q a summary", "metadata": {"m": f"{A_MARK}-0"}},
    ):
        assert unwrap(prefix, b.send("post", f"{prefix}/search", json=body).json) == [], body
    usage = unwrap(prefix, b.send("get", f"{prefix}/usage").json)
    assert usage["tenant_id"] == "globex" and usage["sessions"] == 1
    assert usage["messages"]["total"] == len(TARGETS) + 1
    # A tenant key is no operator token: A's records stay out of reach.
    for method, url in (
        ("get", "/admin/tenants/acme"),
        ("get", "/admin/tenants/acme/usage"),
        ("get", "/admin/tenants/acme/keys"),
        ("delete", "/admin/tenants/acme/keys/" + "x" * 12),
        ("delete", "/admin/tenants/acme"),
        ("patch", "/admin/tenants/acme"),
    ):
        assert b.send(method, url, json={"window_size": 2}).status_code == 401, url
    a_is_untouched()


def test_b_s_writes_to_crafted_ids_land_only_in_its_own_hash_tagged_keys(
    client, tenant, other_tenant, redis_client, addresses
):
    """The key mapping is injective and closed: every key B's writes create is
    ``rc:{globex:<encoded id>}:<suffix>`` with exactly one pair of braces, and its encoded
    part decodes back to exactly the id B used."""
    seed_tenant_a(client, tenant)
    wait_indexed(client, tenant, redis_client)
    a_before = redis_snapshot(redis_client, "acme")
    keys_before = set(redis_client.scan_iter(count=1000))
    b = Attacker(client, other_tenant.headers, addresses)
    for session in TARGETS:
        response = b.send(
            "post", memory_url("", session), json={"messages": [{"role": "Human", "content": "b"}]}
        )
        assert response.status_code == 200, session
    assert sorted(b.send("get", "/sessions?size=100").json) == sorted(TARGETS)

    decoded = set()
    for raw in set(redis_client.scan_iter(count=1000)) - keys_before:
        key = raw.decode()
        if key.startswith("LIMITS:") or key in ("rc:{globex}:sessions", "rc:{globex}:usage"):
            continue  # the rate limiter's counters and B's own tenant-wide keys
        if key in ("rc:due", "rc:due:index"):
            continue  # the shared schedules: members name the session, checked below
        assert key.startswith("rc:{globex:"), key
        assert key.count("{") == 1 and key.count("}") == 1, key
        inner, _, suffix = key.partition("}:")
        assert suffix in ("w", "m", "i", "a", "x", "d", "v", "k"), key
        decoded.add(decode_session_id(inner.removeprefix("rc:{globex:")))
    assert decoded == set(TARGETS)
    for member in redis_client.zrange("rc:due:index", 0, -1):
        tenant_id, _, encoded = member.decode().partition(":")
        assert tenant_id == "globex" and decode_session_id(encoded) in TARGETS
    assert redis_snapshot(redis_client, "acme") == a_before


CONFLICTING = "conflicting"


def spliced(key_id_from, secret_from) -> str:
    """A well-formed key made of one key's id and another key's secret."""
    return f"rk_{key_id_from.key_id}_{secret_from.key[-43:]}"


def confusing_headers(a, b) -> list[list[tuple[str, str]]]:
    return [
        [("Authorization", f"Bearer {b.key}"), ("x-metal-api-key", a.key)],
        [("Authorization", f"Bearer {a.key}"), ("x-metal-api-key", b.key)],
        [("authorization", f"bearer {b.key}"), ("X-METAL-API-KEY", a.key)],
        [("AUTHORIZATION", f"BEARER {a.key}"), ("X-Metal-Api-Key", f"  {b.key}  ")],
        [("Authorization", f"Bearer {b.key}"), ("x-metal-api-key", ADMIN_TOKEN)],
        [("Authorization", f"Bearer {b.key}"), ("Authorization", f"Bearer {a.key}")],
        [("x-metal-api-key", b.key), ("x-metal-api-key", a.key)],
        [("Authorization", f"Bearer {b.key} {a.key}")],
        [("Authorization", f"Bearer {b.key},Bearer {a.key}")],
        [("Authorization", f"Bearer {spliced(a, b)}")],
        [("Authorization", f"Bearer {spliced(b, a)}")],
        [("x-metal-api-key", spliced(a, b))],
        [("x-metal-api-key", b.key[:-1]), ("x-metal-client-id", "acme")],
        [("Authorization", f"Basic {a.key}")],
        [("Authorization", f"Bearer {ADMIN_TOKEN}")],
    ]


def tenant_routes(prefix: str, session: str) -> list[tuple[str, str, dict]]:
    injected = {"messages": [{"role": "Human", "content": "INJECTED"}], "context": "INJECTED"}
    return [
        ("get", memory_url(prefix, session), {}),
        ("post", memory_url(prefix, session), {"json": injected}),
        ("delete", memory_url(prefix, session), {}),
        ("get", memory_url(prefix, session, "messages/1"), {}),
        ("delete", memory_url(prefix, session, "messages/1"), {}),
        ("get", f"{prefix}/sessions?page=1&size=100", {}),
        ("post", memory_url(prefix, session, "retrieval"), {"json": {"text": "x"}}),
        ("get", memory_url(prefix, session, "messages?limit=10"), {}),
        ("get", memory_url(prefix, session, "context?model=gpt-4o&max_tokens=100"), {}),
        ("post", f"{prefix}/search", {"json": {"text": "x"}}),
        ("get", f"{prefix}/keys/current", {}),
        ("get", f"{prefix}/usage", {}),
    ]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_confusing_or_conflicting_credentials_are_refused_on_every_route_and_write_nothing(
    attack_setup, client, tenant, other_tenant, redis_client, prefix
):
    """Two headers naming different keys, duplicated headers, a key id spliced onto
    another key's secret, other schemes, the operator token: always refused — 401, or 429
    once the failures naming one key id pass the per-key limit — for either tenant, and
    neither A nor B gains or loses a byte."""
    b, a_is_untouched = attack_setup
    client.post(
        memory_url("", "b-own"),
        json={"messages": [{"role": "AI", "content": "b"}]},
        headers=other_tenant.headers,
    )
    wait_indexed(client, other_tenant, redis_client, ["b-own"])
    b_before = (
        api_snapshot(client, other_tenant.headers, ["b-own", "s1"]),
        redis_snapshot(redis_client, "globex"),
    )
    refusals: Counter[int] = Counter()
    for headers in confusing_headers(tenant, other_tenant):
        for method, url, kwargs in tenant_routes(prefix, "s1") + tenant_routes(prefix, "b-own"):
            response = b.send(method, url, headers=headers, **kwargs)
            refusals[response.status_code] += 1
            if response.status_code == 429:
                assert response.json["error"]["message"] == "too many failed authentications"
                continue
            assert response.status_code == 401, (headers, method, url, response.get_data())
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert response.json["error"]["code"] == "unauthorized"
    assert set(refusals) <= {401, 429} and refusals[401] >= 20
    assert (
        api_snapshot(client, other_tenant.headers, ["b-own", "s1"]),
        redis_snapshot(redis_client, "globex"),
    ) == b_before
    a_is_untouched()


@pytest.mark.parametrize(
    "headers",
    [
        [("authorization", "bearer {b}")],
        [("AUTHORIZATION", "BEARER {b}")],
        [("Authorization", "Bearer    {b}   ")],
        [("X-METAL-API-KEY", "{b}")],
        [("x-metal-api-key", "  {b}  ")],
        [("X-Metal-Api-Key", "{b}"), ("x-metal-client-id", "acme")],
        [("Authorization", "Bearer {b}"), ("X-Metal-Api-Key", " {b} ")],
        [("Authorization", ""), ("x-metal-api-key", "{b}")],
    ],
    ids=lambda h: "+".join(name for name, _ in h),
)
def test_header_name_case_and_padding_never_change_whose_key_it_is(attack_setup, other_tenant, headers):
    """HTTP header names are case-insensitive and a padded key is the same key: each
    variant acts as B — exactly B — on every prefix."""
    b, a_is_untouched = attack_setup
    concrete = [(name, value.format(b=other_tenant.key)) for name, value in headers]
    for prefix in PREFIXES:
        current = b.send("get", f"{prefix}/keys/current", headers=concrete)
        assert current.status_code == 200, current.get_data()
        assert unwrap(prefix, current.json) == {"tenant_id": "globex", "key_id": other_tenant.key_id}
        posted = b.send(
            "post",
            memory_url(prefix, "s1"),
            headers=concrete,
            json={"messages": [{"role": "Human", "content": "b"}]},
        )
        assert posted.status_code == 200
        mine = unwrap(prefix, b.send("get", memory_url(prefix, "s1"), headers=concrete).json)
        assert {m["content"] for m in mine["messages"]} == {"b"} and mine["context"] is None  # B's own s1
    a_is_untouched()


PREFIX_TENANTS = ("acme", "acme-2", "acm", "acme_2")
# Session ids that, glued naively onto a shorter tenant id, would spell a longer one's key.
PREFIX_SESSIONS = ("s1", "-2:s1", "_2:s1", "e:s1", "e-2:s1", "e_2:s1", "2:s1", "}:sessions", "}:usage")


def test_tenant_ids_that_prefix_each_other_never_reach_each_others_keys(
    client, make_tenant, redis_client, addresses
):
    """Tenants "acme", "acme-2", "acm" and "acme_2": reads, listings, usage, rate limits
    and the operator's erase of one never reach another."""
    tenants = {tid: make_tenant(tid) for tid in PREFIX_TENANTS}
    limited = make_tenant("ac", rate_limit="3/minute")
    for tid, t in tenants.items():
        for session in PREFIX_SESSIONS:
            body = {"messages": [{"role": "Human", "content": f"{tid}|{session}"}], "context": f"{tid}|ctx"}
            assert client.post(memory_url("", session), json=body, headers=t.headers).status_code == 200
    for tid, t in tenants.items():
        for session in PREFIX_SESSIONS:
            body = client.get(memory_url("", session), headers=t.headers).json
            assert [m["content"] for m in body["messages"]] == [f"{tid}|{session}"]
            assert body["context"] == f"{tid}|ctx"
        assert sorted(client.get("/sessions?size=100", headers=t.headers).json) == sorted(PREFIX_SESSIONS)
        usage = client.get("/usage", headers=t.headers).json
        assert usage["tenant_id"] == tid and usage["messages"]["total"] == len(PREFIX_SESSIONS)
        assert usage["sessions"] == len(PREFIX_SESSIONS)

    # "ac" exhausting its own rate limit costs the others nothing.
    statuses = [client.get("/sessions", headers=limited.headers).status_code for _ in range(5)]
    assert statuses[-1] == 429
    for t in tenants.values():
        assert client.get("/sessions", headers=t.headers).status_code == 200

    def snapshots(ids):
        return {
            tid: (
                api_snapshot(client, tenants[tid].headers, PREFIX_SESSIONS),
                redis_snapshot(redis_client, tid),
            )
            for tid in ids
        }

    # The operator erasing the shortest prefix, then "acme", leaves every other tenant whole.
    survivors = ["acme", "acme-2", "acme_2"]
    for tid in survivors:
        wait_indexed(client, tenants[tid], redis_client, PREFIX_SESSIONS)
    before = snapshots(survivors)
    assert client.delete("/admin/tenants/acm", headers=ADMIN).status_code == 200
    assert list(redis_client.scan_iter(match="rc:{acm:*")) == []
    assert snapshots(survivors) == before
    assert client.delete("/admin/tenants/acme", headers=ADMIN).status_code == 200
    assert list(redis_client.scan_iter(match="rc:{acme:*")) == []
    assert list(redis_client.scan_iter(match="rc:{acme}*")) == []
    assert snapshots(["acme-2", "acme_2"]) == {tid: before[tid] for tid in ("acme-2", "acme_2")}
    assert (
        client.get(
            "/sessions", headers=tenants["acme"].headers, environ_base={"REMOTE_ADDR": next(addresses)}
        ).status_code
        == 401
    )


def test_in_drop_in_mode_bad_credentials_never_fall_back_to_the_open_tenant(make_app, tenant, addresses):
    """With ``RECOLLECT_OPEN_TENANT`` only a request with *no* credentials acts as the open
    tenant: a wrong, malformed, forged or conflicting key is a 401, never a silent
    downgrade into the open tenant's data; a valid key still acts as its own tenant."""
    client = make_app(open_tenant="legacy").test_client()
    secret_body = {"messages": [{"role": "Human", "content": "LEGACY-SECRET"}]}
    assert client.post("/sessions/s1/memory", json=secret_body).status_code == 200
    for headers in (
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer    "},
        {"Authorization": f"Basic {tenant.key}"},
        {"Authorization": f"Bearer rk_{tenant.key_id}_{'x' * 43}"},
        {"x-metal-api-key": "nonsense"},
        {"x-metal-api-key": "legacy"},
        {"x-metal-client-id": "legacy", "x-metal-api-key": tenant.key[:-1]},
        {"Authorization": f"Bearer {tenant.key}", "x-metal-api-key": "nonsense"},
    ):
        for prefix in PREFIXES:
            response = client.get(
                memory_url(prefix, "s1"), headers=headers, environ_base={"REMOTE_ADDR": next(addresses)}
            )
            assert response.status_code == 401, (headers, prefix)
            assert b"LEGACY-SECRET" not in response.get_data()
    mine = client.get(memory_url("", "s1"), headers=tenant.headers).json
    assert mine["messages"] == []
    assert client.get("/keys/current", headers=tenant.headers).json["tenant_id"] == "acme"
