"""Search over long-term memory through the API, on a real Redis: keyword (BM25) always,
vector and hybrid with embeddings from the project's fake OpenAI-compatible server. Every
message of a session is searchable — window and archive — once indexed off the request
path; deleted messages and sessions never come back; tenants never see each other."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from tests.api.test_summarization import memory, wait_until
from tests.conftest import TenantHandle


def add(
    client, tenant: TenantHandle, session: str, *contents: str, metadata: dict | None = None
) -> list[int]:
    messages = [
        {"role": "Human", "content": c} | ({"metadata": metadata} if metadata else {}) for c in contents
    ]
    response = client.post(f"/sessions/{session}/memory", json={"messages": messages}, headers=tenant.headers)
    assert response.status_code == 200, response.json
    return response.json["message_ids"]


def indexed(client, tenant: TenantHandle, session: str) -> bool:
    return memory(client, tenant, session)["pending_index"] == 0


def retrieve(client, tenant: TenantHandle, session: str, text: str, **extra) -> list[dict]:
    response = client.post(
        f"/sessions/{session}/retrieval", json={"text": text} | extra, headers=tenant.headers
    )
    assert response.status_code == 200, response.json
    return response.json


def search(client, tenant: TenantHandle, text: str, **extra) -> list[dict]:
    response = client.post("/search", json={"text": text} | extra, headers=tenant.headers)
    assert response.status_code == 200, response.json
    return response.json


FACTS = [
    "The release ships on the fourteenth of March",
    "My cat is called Miso and she likes tuna",
    "The database migration needs a maintenance window",
    "We picked Postgres over MySQL for the billing service",
    "Lunch on Friday is at the Thai place",
    "The staging cluster runs out of disk every week",
    "Miso knocked the coffee over the keyboard",
    "Billing invoices go out on the first business day",
    "The on-call rotation changes every Monday",
    "Our tuna sandwich order was wrong again",
]


@pytest.fixture
def folding_app(make_app):
    return make_app(window_size=4, sweep_interval_seconds=0.05, index_sweep_interval_seconds=0.05)


@pytest.fixture
def folding_client(folding_app):
    return folding_app.test_client()


def test_keyword_retrieval_reaches_folded_messages(folding_client, tenant):
    add(folding_client, tenant, "s1", *FACTS)
    assert wait_until(lambda: memory(folding_client, tenant, "s1")["context"] is not None)
    assert wait_until(lambda: indexed(folding_client, tenant, "s1"))
    hits = retrieve(folding_client, tenant, "s1", "when does the release ship?")
    assert hits[0]["content"] == FACTS[0] and hits[0]["id"] == 1
    window_ids = {m["id"] for m in memory(folding_client, tenant, "s1")["messages"]}
    assert 1 not in window_ids, "the best hit had been folded into the summary: it came from the archive"
    assert set(hits[0]) == {"role", "content", "id", "created_at", "dist"}


def test_hits_are_closest_first_at_most_k_and_only_matching(folding_client, tenant):
    add(folding_client, tenant, "s1", *FACTS)
    assert wait_until(lambda: indexed(folding_client, tenant, "s1"))
    hits = retrieve(folding_client, tenant, "s1", "Miso tuna", k=2)
    # 7 ("Miso ...") and 10 ("... tuna ...") score alike (one term, same length): the earlier wins.
    assert [h["id"] for h in hits] == [2, 7]
    assert hits[0]["id"] == 2, "both query terms beat one"
    assert [h["dist"] for h in hits] == sorted(h["dist"] for h in hits)
    assert all(0 < h["dist"] < 1 for h in hits)
    assert retrieve(folding_client, tenant, "s1", "zeppelin") == []


def test_a_deleted_message_is_never_found_again(folding_client, tenant, redis_client):
    add(folding_client, tenant, "s1", *FACTS)
    assert wait_until(lambda: indexed(folding_client, tenant, "s1"))
    assert folding_client.delete("/sessions/s1/messages/2", headers=tenant.headers).status_code == 200
    assert [h["id"] for h in retrieve(folding_client, tenant, "s1", "Miso")] == [7]
    assert not redis_client.hexists("rc:{acme:s1}:d", "2"), "its index entry is gone too"
    postings = redis_client.hget("rc:{acme:s1}:x", "miso")
    assert postings is not None and len(postings) == 12, "only message 7's posting is left"


def test_a_deleted_session_leaves_no_search_data(folding_client, tenant, redis_client):
    add(folding_client, tenant, "s1", *FACTS)
    assert wait_until(lambda: indexed(folding_client, tenant, "s1"))
    assert folding_client.delete("/sessions/s1/memory", headers=tenant.headers).status_code == 200
    for suffix in ("a", "x", "d", "v", "k", "w", "m"):
        assert not redis_client.exists(f"rc:{{acme:s1}}:{suffix}")
    assert retrieve(folding_client, tenant, "s1", "Miso") == []
    add(folding_client, tenant, "s1", "a new Miso story")
    assert wait_until(lambda: indexed(folding_client, tenant, "s1"))
    assert [h["content"] for h in retrieve(folding_client, tenant, "s1", "Miso")] == ["a new Miso story"]


def test_messages_are_indexed_off_the_request_path_and_gets_report_pending(make_app, tenant):
    app = make_app(index_sweep_interval_seconds=30)  # the sweeper will not come by during the test
    client = app.test_client()
    add(client, tenant, "s1", "first", "second")
    assert memory(client, tenant, "s1")["pending_index"] == 2
    runner = app.extensions["recollect"].index_runner
    assert runner.run_now("acme", "s1")[:2] == ("done", None)
    assert memory(client, tenant, "s1")["pending_index"] == 0
    assert runner.run_now("acme", "s1")[:2] == ("nothing", None), "indexed once, never twice"


def test_retrieval_with_long_term_memory_off_answers_like_motorhead(make_app, make_tenant):
    tenant = make_tenant("acme", long_term_memory=False)
    client = make_app().test_client()
    add(client, tenant, "s1", "hello")
    response = client.post("/sessions/s1/retrieval", json={"text": "hello"}, headers=tenant.headers)
    assert response.status_code == 400 and response.json["error"]["code"] == "long_term_memory_disabled"
    response = client.post("/search", json={"text": "hello"}, headers=tenant.headers)
    assert response.status_code == 400 and response.json["error"]["code"] == "long_term_memory_disabled"
    assert memory(client, tenant, "s1")["pending_index"] == 0


@pytest.mark.parametrize("mode", ["vector", "hybrid"])
def test_vector_modes_need_embeddings(client, tenant, mode):
    response = client.post("/sessions/s1/retrieval", json={"text": "x", "mode": mode}, headers=tenant.headers)
    assert response.status_code == 400 and response.json["error"]["code"] == "embeddings_not_configured"


@pytest.mark.parametrize(
    "body", [{"text": ""}, {"text": "x", "k": 0}, {"text": "x", "k": 51}, {"text": "x", "mode": "fuzzy"}, {}]
)
def test_bad_retrieval_bodies_are_a_422(client, tenant, body):
    response = client.post("/sessions/s1/retrieval", json=body, headers=tenant.headers)
    assert response.status_code == 422 and response.json["error"]["code"] == "invalid_field"


def test_tenant_wide_search_spans_sessions_with_session_and_metadata_filters(folding_client, tenant):
    add(folding_client, tenant, "work", FACTS[2], FACTS[3], metadata={"topic": "infra"})
    add(folding_client, tenant, "home", "Miso sleeps on the database printout", metadata={"topic": "cat"})
    add(folding_client, tenant, "more work", FACTS[7], metadata={"topic": "billing", "team": 2})
    for session in ("work", "home", "more work"):
        assert wait_until(lambda s=session: indexed(folding_client, tenant, s))
    hits = search(folding_client, tenant, "database billing")
    assert {(h["session_id"], h["id"]) for h in hits} == {
        ("work", 1),
        ("work", 2),
        ("home", 1),
        ("more work", 1),
    }
    assert all(
        set(h) >= {"session_id", "role", "content", "id", "created_at", "dist", "metadata"} for h in hits
    )
    only_home = search(folding_client, tenant, "database", session_ids=["home", "nowhere"])
    assert [(h["session_id"], h["id"]) for h in only_home] == [("home", 1)]
    billing = search(folding_client, tenant, "database billing", metadata={"topic": "billing", "team": 2})
    assert [(h["session_id"], h["id"]) for h in billing] == [("more work", 1)]
    assert search(folding_client, tenant, "database", metadata={"topic": "billing", "team": "2"}) == []


def test_no_tenant_ever_finds_another_tenants_messages(folding_client, tenant, other_tenant):
    add(folding_client, tenant, "shared-name", "acme secret launch code")
    add(folding_client, other_tenant, "shared-name", "globex public note")
    for t in (tenant, other_tenant):
        assert wait_until(lambda t=t: indexed(folding_client, t, "shared-name"))
    assert retrieve(folding_client, other_tenant, "shared-name", "secret launch code") == []
    assert search(folding_client, other_tenant, "acme secret launch") == []
    hits = search(folding_client, other_tenant, "note", session_ids=["shared-name"])
    assert [h["content"] for h in hits] == ["globex public note"]


# --- with embeddings -----------------------------------------------------------------------


@pytest.fixture
def embedding_app(make_app, fake_llm):
    return make_app(
        window_size=4,
        sweep_interval_seconds=0.05,
        index_sweep_interval_seconds=0.05,
        embedding_model="fake-embedding",
        openai_api_key="test-key",
        openai_base_url=fake_llm.base_url,
        llm_max_retries=0,
        summary_retry_base_seconds=0.05,
        summary_retry_max_seconds=0.2,
    )


def test_vector_and_hybrid_retrieval_with_embeddings(embedding_app, tenant, fake_llm):
    client = embedding_app.test_client()
    add(client, tenant, "s1", *FACTS)
    assert wait_until(lambda: indexed(client, tenant, "s1"))
    vector = retrieve(client, tenant, "s1", "Miso likes tuna", mode="vector", k=3)
    assert vector[0]["id"] == 2 and vector[0]["dist"] < vector[1]["dist"]
    auto = retrieve(client, tenant, "s1", "Miso likes tuna", k=3)  # auto = hybrid with embeddings
    hybrid = retrieve(client, tenant, "s1", "Miso likes tuna", mode="hybrid", k=3)
    assert auto == hybrid and hybrid[0]["id"] == 2 and hybrid[0]["dist"] == 0.0
    embedded = Counter(fake_llm.embedded_texts)
    assert all(embedded[fact] == 1 for fact in FACTS), "each message embedded once"
    usage = client.get("/usage", headers=tenant.headers).json
    assert usage["llm_calls"]["total"] >= 4 and usage["prompt_tokens"]["total"] > 0, (
        "embedding calls are billed"
    )


def test_concurrent_writers_with_failing_embeddings_index_every_message_exactly_once(
    embedding_app, tenant, fake_llm, redis_client
):
    fake_llm.configure(embedding_fail_rate=0.5, fail_status=503)
    client = embedding_app.test_client()
    sessions = ["alpha", "bravo", "charlie"]

    def writer(session: str) -> None:
        for i in range(12):
            add(client, tenant, session, f"{session} message {i} about topic{i}")

    threads = [threading.Thread(target=writer, args=(s,)) for s in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wait_until(lambda: all(indexed(client, tenant, s) for s in sessions), timeout=30)
    fake_llm.configure(embedding_fail_rate=0.0)
    assert fake_llm.embedding_failed > 0, "some embedding calls did fail"
    for session in sessions:
        documents = redis_client.hgetall(f"rc:{{acme:{session}}}:d")
        vectors = redis_client.hgetall(f"rc:{{acme:{session}}}:v")
        assert sorted(int(k) for k in documents) == list(range(1, 13))
        assert sorted(int(k) for k in vectors) == list(range(1, 13))
        postings = redis_client.hget(f"rc:{{acme:{session}}}:x", session)
        assert postings is not None and len(postings) == 12 * 12, (
            "each message posted once under its session word"
        )
    embedded = Counter(fake_llm.embedded_texts)
    assert all(embedded[f"{s} message {i} about topic{i}"] == 1 for s in sessions for i in range(12))


def test_azure_embeddings_use_motorhead_s_ada_deployment(make_app, tenant, fake_llm):
    app = make_app(
        index_sweep_interval_seconds=0.05,
        azure_api_key="azure-key",
        azure_api_base=fake_llm.base_url.removesuffix("/v1"),
        azure_deployment_id="chat-deployment",
        azure_deployment_id_ada="ada-deployment",
    )
    client = app.test_client()
    add(client, tenant, "s1", "the fjord cruise leaves at nine")
    assert wait_until(lambda: indexed(client, tenant, "s1"))
    hits = retrieve(client, tenant, "s1", "fjord cruise", mode="vector")
    assert [h["content"] for h in hits] == ["the fjord cruise leaves at nine"]
    assert set(fake_llm.azure_deployments) == {"ada-deployment"}, "embeddings go to the ada deployment"


def test_deleting_an_indexed_session_on_plain_redis_touches_no_key_outside_it(
    folding_client, tenant, redis_client
):
    """Without the search module no per-message vector keys exist: the erase must not
    reach for keys named after message ids."""
    redis_client.set("1", "someone else's key")
    redis_client.set("2", "someone else's key")
    add(folding_client, tenant, "s1", "hello there", "general kenobi")
    assert wait_until(lambda: indexed(folding_client, tenant, "s1"))
    assert folding_client.delete("/sessions/s1/memory", headers=tenant.headers).status_code == 200
    assert redis_client.get("1") == b"someone else's key" and redis_client.get("2") == b"someone else's key"
