"""The RediSearch vector path, on a real Redis Stack: where the server has the search
module, vectors go in one HNSW index shared by every tenant, and every query filters by
tenant and session TAGs — with session ids made of RediSearch's tag and query syntax."""

from __future__ import annotations

import pytest
import redis

from app import create_app
from app.domain.tokens import get_encoding  # noqa: F401 - loads the tokenizer before timing-free asserts
from config import load_settings
from tests.api.test_search import FACTS, add, indexed, retrieve, search
from tests.api.test_summarization import memory, wait_until
from tests.conftest import ADMIN, ADMIN_TOKEN

ATTACK_IDS = ["a-b:c.d", "}|{", "@t:{acme}", "x y", "s1\\*", "(s1)", "日本", "-", "*"]


@pytest.fixture
def stack_client(redis_stack):
    client = redis.Redis.from_url(redis_stack.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def stack_app(redis_stack, stack_client, fake_llm):
    settings = load_settings(
        redis_url=redis_stack.url,
        admin_token=ADMIN_TOKEN,
        summarizer="extractive",
        rate_limit="100000/second",
        auth_cache_seconds=0.2,
        window_size=4,
        sweep_interval_seconds=0.05,
        index_sweep_interval_seconds=0.05,
        embedding_model="fake-embedding",
        openai_api_key="test-key",
        openai_base_url=fake_llm.base_url,
        llm_max_retries=0,
    )
    app = create_app(settings)
    app.config["TESTING"] = True
    yield app
    app.extensions["recollect"].shutdown(wait=True)


@pytest.fixture
def tenants(stack_app):
    client = stack_app.test_client()
    made = {}
    for tenant_id in ("acme", "globex"):
        created = client.post("/admin/tenants", json={"id": tenant_id}, headers=ADMIN).json
        made[tenant_id] = type(
            "T", (), {"id": tenant_id, "headers": {"Authorization": f"Bearer {created['api_key']}"}}
        )
    return made


def test_the_search_module_is_detected_and_vectors_go_in_its_index(stack_app, tenants, stack_client):
    assert stack_app.extensions["recollect"].vector_index is not None
    client, acme = stack_app.test_client(), tenants["acme"]
    add(client, acme, "s1", *FACTS)
    assert wait_until(lambda: indexed(client, acme, "s1"))
    assert not stack_client.exists("rc:{acme:s1}:v"), "no exact-search copy"
    vector_keys = sorted(stack_client.scan_iter(match="rc:vec:{acme:s1}:*"))
    assert len(vector_keys) == len(FACTS)
    assert int(stack_client.ft("rc:vectors:64").info()["num_docs"]) == len(FACTS)
    hits = retrieve(client, acme, "s1", "Miso likes tuna", mode="vector", k=3)
    assert hits[0]["id"] == 2 and [h["dist"] for h in hits] == sorted(h["dist"] for h in hits)
    assert retrieve(client, acme, "s1", "Miso likes tuna", k=3)[0]["id"] == 2  # hybrid


def test_the_index_gives_the_exact_search_s_answer_on_a_small_session(
    stack_app, tenants, make_app, fake_llm, make_tenant
):
    client, acme = stack_app.test_client(), tenants["acme"]
    add(client, acme, "s1", *FACTS)
    assert wait_until(lambda: indexed(client, acme, "s1"))
    exact_app = make_app(
        index_sweep_interval_seconds=0.05,
        embedding_model="fake-embedding",
        openai_api_key="test-key",
        openai_base_url=fake_llm.base_url,
    )
    exact_client, plain_acme = exact_app.test_client(), make_tenant("acme")
    add(exact_client, plain_acme, "s1", *FACTS)
    assert wait_until(lambda: indexed(exact_client, plain_acme, "s1"))
    for query in ("Miso likes tuna", "billing database", "staging disk"):
        by_index = retrieve(client, acme, "s1", query, mode="vector", k=5)
        exact = retrieve(exact_client, plain_acme, "s1", query, mode="vector", k=5)
        assert [h["dist"] for h in by_index] == pytest.approx([h["dist"] for h in exact], abs=1e-5)

        # The same ids, except among equally distant messages (and at the cut-off, where
        # which of several equally distant messages makes the top k is arbitrary).
        def settled(hits: list[dict]) -> list[tuple[float, int]]:
            distances = [round(h["dist"], 4) for h in hits]
            return sorted(
                (d, h["id"])
                for d, h in zip(distances, hits, strict=True)
                if distances.count(d) == 1 and d != distances[-1]
            )

        assert settled(by_index) == settled(exact), query


def test_tag_and_query_syntax_in_session_ids_never_crosses_sessions_or_tenants(stack_app, tenants):
    client = stack_app.test_client()
    for tenant_id, tenant in tenants.items():
        for session in ATTACK_IDS:
            add(client, tenant, session, f"{tenant_id} note about {session} weather")
    for tenant in tenants.values():
        for session in ATTACK_IDS:
            assert wait_until(lambda t=tenant, s=session: indexed(client, t, s))
    for tenant_id, tenant in tenants.items():
        for session in ATTACK_IDS:
            hits = retrieve(client, tenant, session, "note about weather", mode="vector", k=50)
            assert [h["content"] for h in hits] == [f"{tenant_id} note about {session} weather"], session
        everything = search(client, tenant, "note about weather", mode="vector", k=50)
        assert sorted(h["session_id"] for h in everything) == sorted(ATTACK_IDS)
        assert all(h["content"].startswith(f"{tenant_id} ") for h in everything)
        some = search(client, tenant, "weather", mode="vector", k=50, session_ids=["}|{", "x y"])
        assert sorted(h["session_id"] for h in some) == ["x y", "}|{"]


def test_deleted_messages_sessions_and_tenants_leave_nothing_in_the_index(stack_app, tenants, stack_client):
    client, acme = stack_app.test_client(), tenants["acme"]
    add(client, acme, "s1", *FACTS)
    add(client, acme, "s2", *FACTS[:3])
    assert wait_until(lambda: indexed(client, acme, "s1") and indexed(client, acme, "s2"))
    assert client.delete("/sessions/s1/messages/2", headers=acme.headers).status_code == 200
    assert not stack_client.exists("rc:vec:{acme:s1}:2")
    assert 2 not in [h["id"] for h in retrieve(client, acme, "s1", "Miso likes tuna", mode="vector", k=10)]
    assert client.delete("/sessions/s1/memory", headers=acme.headers).status_code == 200
    assert list(stack_client.scan_iter(match="rc:vec:{acme:s1}:*")) == []
    assert retrieve(client, acme, "s1", "Miso", mode="vector") == []
    assert len(list(stack_client.scan_iter(match="rc:vec:{acme:s2}:*"))) == 3
    assert client.delete("/admin/tenants/acme", headers=ADMIN).status_code == 200
    assert list(stack_client.scan_iter(match="rc:vec:*")) == []


def test_vectors_expire_after_their_session(stack_app, tenants, stack_client):
    client, globex = stack_app.test_client(), tenants["globex"]
    assert (
        client.patch("/admin/tenants/globex", json={"session_ttl_seconds": 600}, headers=ADMIN).status_code
        == 200
    )
    assert wait_until(
        lambda: (
            client.post(
                "/sessions/s1/memory",
                json={"messages": [{"role": "Human", "content": "ttl probe"}]},
                headers=globex.headers,
            ).status_code
            == 200
            and stack_client.ttl("rc:{globex:s1}:m") > 0
        )
    )
    assert wait_until(lambda: indexed(client, globex, "s1"))
    session_ttl = stack_client.ttl("rc:{globex:s1}:m")
    vector_ttl = stack_client.ttl("rc:vec:{globex:s1}:1")
    assert session_ttl <= 600 and session_ttl <= vector_ttl <= 900
    assert memory(client, globex, "s1")["messages"]
