"""Tenant policies (issue: rate limits, TTL, quotas, LLM budgets, usage) on a real Redis."""

from __future__ import annotations

import time

from tests.conftest import ADMIN

ONE = {"messages": [{"role": "Human", "content": "hello"}]}


def post(client, tenant, session="s1", body=ONE):
    return client.post(f"/sessions/{session}/memory", json=body, headers=tenant.headers)


def test_requests_over_the_tenant_limit_get_429_with_headers(client, make_tenant):
    a = make_tenant("acme", rate_limit="5/minute")
    b = make_tenant("globex", rate_limit="5/minute")
    for i in range(5):
        response = client.get("/sessions", headers=a.headers)
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == "5"
        assert response.headers["X-RateLimit-Remaining"] == str(4 - i)
    limited = post(client, a)  # every route shares the tenant's budget
    assert limited.status_code == 429
    assert limited.json["error"]["code"] == "rate_limited"
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert client.get("/sessions/s1/memory", headers=a.headers).status_code == 429
    # Tenant B is not affected by A's exhaustion; health and admin are never limited.
    assert client.get("/sessions", headers=b.headers).status_code == 200
    for _ in range(10):
        assert client.get("/healthz").status_code == 200
        assert client.get("/admin/tenants", headers=ADMIN).status_code == 200
    usage = client.get("/admin/tenants/acme/usage", headers=ADMIN).json
    assert usage["rate_limited"] == {"total": 2, "today": 2}


def test_changing_the_limit_takes_effect_within_a_second(client, make_tenant):
    a = make_tenant("acme", rate_limit="2/minute")
    for _ in range(2):
        client.get("/sessions", headers=a.headers)
    assert client.get("/sessions", headers=a.headers).status_code == 429
    client.patch("/admin/tenants/acme", json={"rate_limit": "100/minute"}, headers=ADMIN)
    time.sleep(0.25)  # the test app's auth cache lives 0.2 s
    assert client.get("/sessions", headers=a.headers).status_code == 200


def test_failed_authentications_are_limited_per_address(client, tenant):
    wrong = {"Authorization": "Bearer rk_" + "W" * 12 + "_" + "x" * 43}
    statuses = [client.get("/sessions", headers=wrong).status_code for _ in range(21)]
    assert statuses[:20] == [401] * 20 and statuses[20] == 429
    refused = client.get("/sessions", headers=wrong)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert client.get("/sessions", headers=tenant.headers).status_code == 200  # a good key passes
    other = client.get("/sessions", headers=tenant.headers, environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert other.status_code == 200


def test_session_keys_expire_together_and_writes_refresh_the_ttl(client, make_tenant, redis_client):
    tenant = make_tenant("acme", session_ttl_seconds=1)
    post(client, tenant, "s1")
    post(client, tenant, "s2")
    client.post("/sessions/s1/memory", json=ONE, headers=tenant.headers | {"Idempotency-Key": "k"})
    keys = list(redis_client.scan_iter(match="rc:{acme:s1}*"))
    assert len(keys) == 3 and all(0 < redis_client.pttl(k) <= 1000 for k in keys)
    time.sleep(0.6)
    post(client, tenant, "s2")  # sliding: s2 lives on
    time.sleep(0.6)
    assert list(redis_client.scan_iter(match="rc:{acme:s1}*")) == []
    assert client.get("/sessions", headers=tenant.headers).json == ["s2"]
    assert client.get("/sessions/s1/memory", headers=tenant.headers).json["messages"] == []
    assert len(client.get("/sessions/s2/memory", headers=tenant.headers).json["messages"]) == 2
    # Reading does not refresh the TTL (documented): only writes do.
    time.sleep(1.1)
    assert client.get("/sessions", headers=tenant.headers).json == []
    assert client.get("/usage", headers=tenant.headers).json["sessions"] == 0


def test_a_fold_finishing_after_expiry_does_not_recreate_the_session(
    llm_app, make_tenant, fake_llm, redis_client
):
    app = llm_app()
    client = app.test_client()
    tenant = make_tenant("acme", session_ttl_seconds=1)
    fake_llm.hold()
    try:
        for i in range(5):
            post(client, tenant, "s1", {"messages": [{"role": "Human", "content": f"[[e{i}]]"}]})
        assert fake_llm.wait_for_calls(1, timeout=5)
        time.sleep(1.2)
        # Only the running fold's own lock is left; the session's data has expired.
        assert list(redis_client.scan_iter(match="rc:{acme:s1}*")) == [b"rc:{acme:s1}:l"]
    finally:
        fake_llm.release()
    time.sleep(0.5)
    assert fake_llm.chat_completed == 1
    assert list(redis_client.scan_iter(match="rc:{acme:s1}*")) == []  # lock released too
    assert client.get("/sessions/s1/memory", headers=tenant.headers).json["messages"] == []


def test_session_quota(client, make_tenant):
    tenant = make_tenant("acme", max_sessions=2)
    assert post(client, tenant, "s1").status_code == 200
    assert post(client, tenant, "s2").status_code == 200
    refused = post(client, tenant, "s3")
    assert refused.status_code == 403 and refused.json["error"]["code"] == "quota_exceeded"
    assert client.get("/sessions/s3/memory", headers=tenant.headers).json["messages"] == []
    assert post(client, tenant, "s1").status_code == 200  # existing sessions keep working
    assert client.get("/sessions", headers=tenant.headers).json == ["s2", "s1"]
    client.delete("/sessions/s2/memory", headers=tenant.headers)
    assert post(client, tenant, "s3").status_code == 200
    usage = client.get("/usage", headers=tenant.headers).json
    assert usage["sessions"] == 2 and usage["messages"]["total"] == 4  # the refused one is not counted


def test_per_tenant_message_size_limit(client, make_tenant):
    tenant = make_tenant("acme", max_message_bytes=64)
    big = {"messages": [{"role": "Human", "content": "x" * 65}]}
    response = post(client, tenant, "s1", big)
    assert response.status_code == 413 and response.json["error"]["code"] == "message_too_large"


def deferred_folds() -> float:
    from prometheus_client import REGISTRY

    sample = REGISTRY.get_sample_value("recollect_summarization_jobs_total", {"outcome": "deferred"})
    return sample or 0.0


def test_daily_llm_budget_defers_summaries_without_loss_and_resumes(llm_app, make_tenant, fake_llm):
    app = llm_app(budget_recheck_seconds=0.1)
    client = app.test_client()
    tenant = make_tenant("acme", summary_token_budget_daily=1)
    deferred_before = deferred_folds()
    for i in range(5):
        post(client, tenant, "s1", {"messages": [{"role": "Human", "content": f"[[b{i}]]"}]})
    deadline = time.monotonic() + 5
    while client.get("/sessions/s1/memory", headers=tenant.headers).json["context"] is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # The first fold spent the whole budget: the next ones wait, appends still succeed.
    for i in range(5, 9):
        assert (
            post(client, tenant, "s1", {"messages": [{"role": "Human", "content": f"[[b{i}]]"}]}).status_code
            == 200
        )
    time.sleep(0.5)
    body = client.get("/sessions/s1/memory", headers=tenant.headers).json
    assert fake_llm.chat_calls == 1 and body["pending_summary"] == 2
    assert deferred_folds() > deferred_before
    # Raising the budget (0 = unlimited) resumes summarization; nothing was lost.
    client.patch("/admin/tenants/acme", json={"summary_token_budget_daily": 0}, headers=ADMIN)
    deadline = time.monotonic() + 5
    while client.get("/sessions/s1/memory", headers=tenant.headers).json["pending_summary"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    body = client.get("/sessions/s1/memory", headers=tenant.headers).json
    markers = body["context"].split()[1:] + [m["content"] for m in body["messages"]]
    assert sorted(markers) == sorted(f"[[b{i}]]" for i in range(9))


def test_usage_reports_what_the_tenant_did(llm_app, make_tenant, fake_llm):
    app = llm_app()
    client = app.test_client()
    tenant = make_tenant("acme")
    for session in ("s1", "s2"):
        for _ in range(3):
            post(
                client,
                tenant,
                session,
                {"messages": [{"role": "Human", "content": "a"}, {"role": "AI", "content": "b"}]},
            )
    client.post("/sessions/s1/memory", json=ONE, headers=tenant.headers | {"Idempotency-Key": "x"})
    client.post("/sessions/s1/memory", json=ONE, headers=tenant.headers | {"Idempotency-Key": "x"})  # replay
    deadline = time.monotonic() + 5
    while fake_llm.chat_completed < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.2)
    usage = client.get("/usage", headers=tenant.headers).json
    assert usage["tenant_id"] == "acme" and usage["sessions"] == 2
    assert usage["messages"] == {"total": 13, "today": 13}
    assert usage["llm_calls"]["total"] == fake_llm.chat_completed
    assert usage["prompt_tokens"]["today"] == fake_llm.total_prompt_tokens
    assert usage["completion_tokens"]["total"] == fake_llm.total_completion_tokens
    assert usage["rate_limited"] == {"total": 0, "today": 0}
    assert client.get("/admin/tenants/acme/usage", headers=ADMIN).json == usage
