"""Rate limits charged inside the store's round trip on the memory append and read routes.

On a single Redis node those two routes charge the tenant's limits in the request's own
script or pipeline (@charged_in_store, app/rate_limits/in_store.py); every other route is charged by
flask-limiter's hook. The tenant sees one budget, flask-limiter's headers and its 429,
whichever path a request took. On Redis Cluster both routes go through the hook, so these
behaviours are checked there too (only the round-trip count is single-node).
"""

from __future__ import annotations

import time

import pytest
import redis

from tests.conftest import ADMIN

ONE = {"messages": [{"role": "Human", "content": "hello"}]}


def post(client, tenant, session="s1", body=ONE):
    return client.post(f"/sessions/{session}/memory", json=body, headers=tenant.headers)


def read(client, tenant, session="s1"):
    return client.get(f"/sessions/{session}/memory", headers=tenant.headers)


def test_memory_routes_share_the_budget_and_headers_of_every_other_route(client, make_tenant):
    acme = make_tenant("acme", rate_limit="5/minute")
    responses = [
        read(client, acme),
        post(client, acme),
        client.get("/sessions", headers=acme.headers),  # flask-limiter's own hook
        read(client, acme),
        post(client, acme),
    ]
    assert [r.status_code for r in responses] == [200] * 5
    assert [r.headers["X-RateLimit-Remaining"] for r in responses] == ["4", "3", "2", "1", "0"]
    assert {r.headers["X-RateLimit-Limit"] for r in responses} == {"5"}
    # limits' own arithmetic: the reset is the current window's TTL modulo its length.
    now = time.time()
    assert all(now - 2 <= int(r.headers["X-RateLimit-Reset"]) <= now + 61 for r in responses)
    assert not any("Retry-After" in r.headers for r in responses)  # only on a refusal
    for refused in (client.get("/sessions", headers=acme.headers), read(client, acme), post(client, acme)):
        assert refused.status_code == 429
        assert refused.json["error"]["code"] == "rate_limited"
        assert refused.headers["X-RateLimit-Remaining"] == "0"
        assert 0 < int(refused.headers["Retry-After"]) <= 120
    usage = client.get("/admin/tenants/acme/usage", headers=ADMIN).json
    assert usage["rate_limited"] == {"total": 3, "today": 3}


def test_a_refused_append_writes_nothing(client, make_tenant):
    acme = make_tenant("acme", rate_limit="2/minute")
    assert post(client, acme, "kept").status_code == 200
    assert post(client, acme, "kept").status_code == 200
    assert post(client, acme, "never").status_code == 429
    assert post(client, acme, "kept").status_code == 429
    client.patch("/admin/tenants/acme", json={"rate_limit": "100/minute"}, headers=ADMIN)
    time.sleep(0.25)  # the test app's auth cache lives 0.2 s
    assert client.get("/sessions", headers=acme.headers).json == ["kept"]
    assert [m["id"] for m in read(client, acme, "kept").json["messages"]] == [2, 1]
    assert read(client, acme, "never").json["messages"] == []
    assert client.get("/usage", headers=acme.headers).json["messages"]["total"] == 2


def test_several_limits_are_charged_as_flask_limiter_charges_them(client, make_tenant, redis_client):
    """The same requests against the inline routes (acme) and flask-limiter's hook (globex)
    leave the same counters: limits in flask-limiter's order (finest window first), and a
    refusal stops the evaluation, so the coarser limit is not charged for it."""
    acme = make_tenant("acme", rate_limit="100/minute;3/second")
    globex = make_tenant("globex", rate_limit="100/minute;3/second")
    inline = [read(client, acme) for _ in range(4)]
    hooked = [client.get("/sessions", headers=globex.headers) for _ in range(4)]
    for responses in (inline, hooked):
        assert [r.status_code for r in responses] == [200, 200, 200, 429]
        assert [r.headers["X-RateLimit-Limit"] for r in responses] == ["3"] * 4
        assert [r.headers["X-RateLimit-Remaining"] for r in responses] == ["2", "1", "0", "0"]

    def counters(tenant_id: str) -> dict[str, int]:
        found = {}
        for key in redis_client.scan_iter(match=f"LIMITS:*t:{tenant_id}/*"):
            name = key.decode().replace(f"t:{tenant_id}", "t:*")
            found[name] = int(redis_client.get(key))
        return found

    assert counters("acme") == counters("globex")
    assert sorted(counters("acme").values()) == [3, 3]


def test_a_request_that_fails_before_the_store_is_still_charged(client, make_tenant):
    acme = make_tenant("acme", rate_limit="3/minute")
    bad = {"messages": [{"role": "Human"}]}  # no content
    failed = [post(client, acme, body=bad) for _ in range(3)]
    assert [r.status_code for r in failed] == [422] * 3
    assert [r.headers["X-RateLimit-Remaining"] for r in failed] == ["2", "1", "0"]
    over = post(client, acme, body=bad)
    assert over.status_code == 429
    assert over.json["error"]["code"] == "rate_limited"
    assert "Retry-After" in over.headers
    assert read(client, acme).status_code == 429
    assert client.get("/sessions/%01/memory", headers=acme.headers).status_code == 429


def test_a_read_survives_redis_forgetting_its_scripts(client, make_tenant, redis_client):
    acme = make_tenant("acme", rate_limit="10/minute")
    assert post(client, acme).status_code == 200
    redis_client.script_flush()
    response = read(client, acme)
    assert response.status_code == 200
    assert [m["content"] for m in response.json["messages"]] == ["hello"]
    assert response.headers["X-RateLimit-Remaining"] == "8"  # charged once, not twice
    redis_client.script_flush()
    assert post(client, acme).headers["X-RateLimit-Remaining"] == "7"


def test_append_and_read_cost_one_round_trip_each(make_app, make_tenant, redis_client, count_round_trips):
    if isinstance(redis_client, redis.RedisCluster):
        pytest.skip("on Redis Cluster the counters live in other slots: flask-limiter charges them")
    # The longest auth cache: a refresh would be a round trip of its own.
    client = make_app(auth_cache_seconds=1).test_client()
    acme = make_tenant("acme", rate_limit="1000/minute;100/second")
    assert post(client, acme).status_code == 200  # authenticates (cached) and loads scripts
    assert read(client, acme).status_code == 200
    trips = count_round_trips()
    assert post(client, acme).status_code == 200
    assert trips.sent == 1
    assert read(client, acme).status_code == 200
    assert trips.sent == 2
