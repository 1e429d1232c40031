"""Summarization through the API, on a real Redis, with the real openai client talking
HTTP to the project's fake LLM. The fake echoes every ``[[marker]]`` it is sent, in order
and without deduplication, so a summary shows exactly which messages were folded — and a
message folded twice would show twice."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
import redis

from tests.conftest import TenantHandle

MARKER = re.compile(r"\[\[[A-Za-z0-9:_\-.]+\]\]")


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def post(client, tenant: TenantHandle, session: str, *contents: str, role: str = "Human"):
    response = client.post(
        f"/sessions/{session}/memory",
        json={"messages": [{"role": role, "content": c} for c in contents]},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.json
    return response


def memory(client, tenant: TenantHandle, session: str) -> dict:
    response = client.get(f"/sessions/{session}/memory", headers=tenant.headers)
    assert response.status_code == 200
    return response.json


def settled(client, tenant: TenantHandle, session: str, window_size: int = 4) -> bool:
    body = memory(client, tenant, session)
    return (
        body["pending_summary"] == 0
        and len(body["messages"]) <= window_size
        and (body["context"] is not None)
    )


def markers_everywhere(body: dict) -> Counter:
    found: Counter = Counter()
    for message in body["messages"]:
        found.update(MARKER.findall(message["content"]))
    found.update(MARKER.findall(body["context"] or ""))
    return found


def test_overflow_folds_the_oldest_messages_into_the_summary(llm_app, make_tenant, fake_llm):
    client = llm_app().test_client()
    tenant = make_tenant()
    for i in range(5):
        post(client, tenant, "s1", f"message [[m{i}]]")
    assert wait_until(lambda: settled(client, tenant, "s1"))
    body = memory(client, tenant, "s1")
    # 5 > 4: fold until 4 // 2 = 2 remain; the summary names exactly the folded three.
    assert [m["content"] for m in body["messages"]] == ["message [[m4]]", "message [[m3]]"]
    assert body["context"] == "Summary: [[m0]] [[m1]] [[m2]]"
    assert body["tokens"] > 0
    assert body["tokens"] == fake_llm.total_prompt_tokens + fake_llm.total_completion_tokens


def test_summary_is_incremental_previous_summary_plus_new_lines(llm_app, make_tenant, fake_llm):
    client = llm_app().test_client()
    tenant = make_tenant()
    for i in range(5):
        post(client, tenant, "s1", f"[[a{i}]]")
    assert wait_until(lambda: settled(client, tenant, "s1"))
    for i in range(3):
        post(client, tenant, "s1", f"[[b{i}]]")
    assert wait_until(lambda: fake_llm.chat_completed >= 2 and settled(client, tenant, "s1"))
    second = fake_llm.requests[-1]["messages"][-1]["content"]
    previous, new_lines = second.split("New lines of conversation:")
    # The previous summary, then exactly the lines leaving the window (a3 a4 b0 of
    # a3 a4 b0 b1 b2): nothing already summarized is sent again, nothing kept is sent.
    assert "Summary: [[a0]] [[a1]] [[a2]]" in previous
    assert MARKER.findall(new_lines) == ["[[a3]]", "[[a4]]", "[[b0]]"]
    body = memory(client, tenant, "s1")
    assert markers_everywhere(body) == Counter(
        [f"[[a{i}]]" for i in range(5)] + [f"[[b{i}]]" for i in range(3)]
    )


def test_post_returns_while_the_llm_call_is_still_held(llm_app, make_tenant, fake_llm):
    client = llm_app().test_client()
    tenant = make_tenant()
    fake_llm.hold()
    try:
        for i in range(4):
            post(client, tenant, "s1", f"[[h{i}]]")
        started = time.perf_counter()
        post(client, tenant, "s1", "[[h4]]")  # overflows: triggers the fold
        assert fake_llm.wait_for_calls(1, timeout=5), "the fold should have reached the LLM"
        assert fake_llm.chat_completed == 0
        elapsed = time.perf_counter() - started
        assert elapsed < 1.0
        # While the call is held, more POSTs and GETs are served, nothing is trimmed,
        # and GET says how many messages await summarization.
        post(client, tenant, "s1", "[[h5]]")
        body = memory(client, tenant, "s1")
        assert len(body["messages"]) == 4 and body["pending_summary"] == 2
        assert body["context"] is None
    finally:
        fake_llm.release()
    assert wait_until(lambda: settled(client, tenant, "s1"))
    assert markers_everywhere(memory(client, tenant, "s1")) == Counter(f"[[h{i}]]" for i in range(6))


def test_llm_failures_lose_nothing_and_are_retried(llm_app, make_tenant, fake_llm):
    client = llm_app().test_client()
    tenant = make_tenant()
    fake_llm.configure(fail_rate=1.0, fail_status=500)
    for i in range(9):
        post(client, tenant, "s1", f"[[f{i}]]")
    assert fake_llm.wait_for_calls(2, timeout=10), "failed folds are retried"
    body = memory(client, tenant, "s1")
    assert body["context"] is None
    assert body["pending_summary"] == 5  # the window grew past window_size; nothing dropped
    assert markers_everywhere(body) + Counter() <= Counter(f"[[f{i}]]" for i in range(9))
    fake_llm.configure(fail_rate=0.0)
    assert wait_until(lambda: settled(client, tenant, "s1"))
    assert markers_everywhere(memory(client, tenant, "s1")) == Counter(f"[[f{i}]]" for i in range(9))


def test_rate_limited_llm_is_retried_after_its_retry_after(llm_app, make_tenant, fake_llm):
    client = llm_app().test_client()
    tenant = make_tenant()
    fake_llm.configure(fail_rate=1.0, fail_status=429, retry_after=1)
    for i in range(5):
        post(client, tenant, "s1", f"[[r{i}]]")
    assert fake_llm.wait_for_calls(1, timeout=5)
    first_call = time.monotonic()
    fake_llm.configure(fail_rate=0.0)
    assert wait_until(lambda: fake_llm.chat_calls >= 2, timeout=5)
    # Our backoff is 0.05-0.2 s, but the server asked for 1 s.
    assert time.monotonic() - first_call >= 0.9
    assert wait_until(lambda: settled(client, tenant, "s1"))


def test_a_hanging_llm_times_out_and_the_fold_is_retried(llm_app, make_tenant, fake_llm):
    client = llm_app(llm_timeout_seconds=0.5).test_client()
    tenant = make_tenant()
    fake_llm.configure(hang_rate=1.0)
    for i in range(5):
        post(client, tenant, "s1", f"[[t{i}]]")
    assert fake_llm.wait_for_calls(1, timeout=5)
    time.sleep(0.7)
    fake_llm.configure(hang_rate=0.0)
    assert wait_until(lambda: settled(client, tenant, "s1"))
    assert markers_everywhere(memory(client, tenant, "s1")) == Counter(f"[[t{i}]]" for i in range(5))


def test_delete_during_a_held_llm_call_does_not_resurrect_the_session(
    llm_app, make_tenant, fake_llm, redis_client
):
    client = llm_app().test_client()
    tenant = make_tenant()
    fake_llm.hold()
    try:
        for i in range(5):
            post(client, tenant, "s1", f"[[d{i}]]")
        assert fake_llm.wait_for_calls(1, timeout=5)
        assert client.delete("/sessions/s1/memory", headers=tenant.headers).status_code == 200
    finally:
        fake_llm.release()
    assert wait_until(lambda: fake_llm.chat_completed >= 1)
    time.sleep(0.3)
    body = memory(client, tenant, "s1")
    assert body == {"messages": [], "context": None, "tokens": 0, "pending_summary": 0, "pending_index": 0}
    assert client.get("/sessions", headers=tenant.headers).json == []
    # (An API key's record can hold "s1" in its random id.)
    assert not [k for k in redis_client.scan_iter(match="*s1*") if b":key:" not in k]


def test_a_message_deleted_during_the_llm_call_is_not_kept_in_the_summary(llm_app, make_tenant, fake_llm):
    client = llm_app().test_client()
    tenant = make_tenant()
    fake_llm.hold()
    try:
        ids = []
        for i in range(6):
            ids += post(client, tenant, "s1", f"[[x{i}]]").json["message_ids"]
        assert fake_llm.wait_for_calls(1, timeout=5)  # folding x0..x2
        deleted = client.delete(f"/sessions/s1/messages/{ids[1]}", headers=tenant.headers)
        assert deleted.status_code == 200
    finally:
        fake_llm.release()
    # The first fold's commit must refuse (x1 is gone); the retry folds what is really there.
    assert wait_until(lambda: settled(client, tenant, "s1"))
    body = memory(client, tenant, "s1")
    assert body["context"] == "Summary: [[x0]] [[x2]] [[x3]]"
    assert [m["content"] for m in body["messages"]] == ["[[x5]]", "[[x4]]"]
    assert body["tokens"] == fake_llm.total_prompt_tokens + fake_llm.total_completion_tokens


def test_exactly_once_under_concurrent_appends_and_a_slow_llm(llm_app, make_tenant, fake_llm):
    """Many threads append to shared and private sessions while folds run against a slow
    LLM; afterwards every message is in exactly one of {window, summary}."""
    app = llm_app(summary_workers=3)
    tenant = make_tenant()
    fake_llm.configure(latency=0.05)
    sessions = ["shared-a", "shared-b"] + [f"own-{t}" for t in range(4)]
    expected: dict[str, Counter] = {s: Counter() for s in sessions}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def writer(thread: int) -> None:
        client = app.test_client()
        try:
            for i in range(25):
                for session in (sessions[i % 2], f"own-{thread}"):
                    marker = f"[[w{thread}-{i}-{session}]]"
                    post(client, tenant, session, f"msg {marker}")
                    with lock:
                        expected[session][marker] += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    client = app.test_client()
    for session in sessions:
        assert wait_until(lambda s=session: settled(client, tenant, s), timeout=30), session
        found = markers_everywhere(memory(client, tenant, session))
        assert found == expected[session], f"{session}: lost or duplicated messages"


def test_one_fold_per_session_across_two_app_instances(make_app, make_tenant, fake_llm):
    """Two app instances on one Redis (two workers or hosts): the claim on the due set
    and the session lock make the second wait its turn instead of summarizing the same
    messages again."""
    settings = {
        "summarizer": "openai",
        "openai_api_key": "k",
        "openai_base_url": fake_llm.base_url,
        "llm_max_retries": 0,
        "sweep_interval_seconds": 0.05,
        "summary_retry_base_seconds": 0.05,
        "window_size": 4,
    }
    first, second = make_app(**settings), make_app(**settings)
    tenant = make_tenant()
    c1, c2 = first.test_client(), second.test_client()
    fake_llm.hold()
    try:
        for i in range(5):
            post(c1, tenant, "s1", f"[[p{i}]]")
        assert fake_llm.wait_for_calls(1, timeout=5)
        for i in range(5, 8):
            post(c2, tenant, "s1", f"[[p{i}]]")  # overflows again, in the other instance
        time.sleep(0.5)
        assert fake_llm.chat_calls == 1, "instance 1's claim must be respected"
        # Even a fold forced in instance 2 finds the session lock taken.
        assert second.extensions["recollect"].runner.run_now("acme", "s1")[:2] == ("busy", None)
        assert fake_llm.chat_calls == 1
    finally:
        fake_llm.release()
    assert wait_until(lambda: settled(c2, tenant, "s1"))
    assert markers_everywhere(memory(c2, tenant, "s1")) == Counter(f"[[p{i}]]" for i in range(8))


def test_context_is_never_the_literal_none(llm_app, make_tenant):
    client = llm_app().test_client()
    tenant = make_tenant()
    for _ in range(5):
        post(client, tenant, "s1", "[[FAKE:NONE]] small talk")
    assert wait_until(
        lambda: (
            memory(client, tenant, "s1")["pending_summary"] == 0
            and len(memory(client, tenant, "s1")["messages"]) == 2
        )
    )
    body = memory(client, tenant, "s1")
    assert body["context"] is None and body["tokens"] > 0


def test_extractive_summarizer_is_the_default_without_an_api_key(make_app, make_tenant):
    app = make_app(summarizer="auto", window_size=4, sweep_interval_seconds=0.05)
    assert app.extensions["recollect"].settings.effective_summarizer == "extractive"
    client = app.test_client()
    tenant = make_tenant()
    for i in range(5):
        post(client, tenant, "s1", f"Point {i} matters. Details follow.")
    assert wait_until(lambda: settled(client, tenant, "s1"))
    body = memory(client, tenant, "s1")
    assert body["context"] == "Human: Point 0 matters.\nHuman: Point 1 matters.\nHuman: Point 2 matters."
    assert body["tokens"] == 0


def test_tenant_summary_policy_reaches_the_llm(llm_app, make_tenant, fake_llm):
    client = llm_app().test_client()
    tenant = make_tenant("acme", summary_model="my-local-llama", summary_prompt="Summarize tersely.")
    for i in range(5):
        post(client, tenant, "s1", f"[[q{i}]]")
    assert wait_until(lambda: fake_llm.chat_completed >= 1)
    request = fake_llm.requests[0]
    assert request["model"] == "my-local-llama"
    assert request["messages"][0] == {"role": "system", "content": "Summarize tersely."}


def test_worker_shutdown_hands_queued_folds_back(llm_app, make_tenant, fake_llm, redis_client):
    app = llm_app(summary_workers=1)
    client = app.test_client()
    tenant = make_tenant()
    fake_llm.hold()
    try:
        for session in ("s1", "s2"):
            for i in range(5):
                post(client, tenant, session, f"[[{session}-{i}]]")
        assert fake_llm.wait_for_calls(1, timeout=5)
        runner = app.extensions["recollect"].runner
        stopper = threading.Thread(target=runner.shutdown, kwargs={"wait": True})
        stopper.start()
        time.sleep(0.2)
        assert stopper.is_alive(), "shutdown waits for the running fold"
    finally:
        fake_llm.release()
    stopper.join(timeout=10)
    assert not stopper.is_alive()
    # The fold that was running committed; the other session is still due for any worker.
    due = {m.decode() for m in redis_client.zrange("rc:due", 0, -1)}
    assert due == {"acme:s2"} or due == {"acme:s1"}


def test_a_saturated_pool_loses_no_fold(llm_app, make_tenant, fake_llm):
    """With one fold slot busy, other sessions stay due and are folded afterwards."""
    client = llm_app(summary_workers=1).test_client()
    tenant = make_tenant()
    fake_llm.hold()
    try:
        for session in ("s1", "s2", "s3"):
            for i in range(5):
                post(client, tenant, session, f"[[{session}-{i}]]")
        assert fake_llm.wait_for_calls(1, timeout=5)
        time.sleep(0.3)
        assert fake_llm.chat_calls == 1  # one slot: the others wait, marked due
    finally:
        fake_llm.release()
    for session in ("s1", "s2", "s3"):
        assert wait_until(lambda s=session: settled(client, tenant, s)), session
        assert markers_everywhere(memory(client, tenant, session)) == Counter(
            f"[[{session}-{i}]]" for i in range(5)
        )


def test_tenant_usage_totals_match_the_llm_bill(llm_app, make_tenant, fake_llm, redis_client):
    client = llm_app().test_client()
    tenant = make_tenant()
    for session in ("s1", "s2"):
        for i in range(5):
            post(client, tenant, session, f"[[{session}-{i}]]")
    assert wait_until(lambda: settled(client, tenant, "s1") and settled(client, tenant, "s2"))
    usage = {k.decode(): int(v) for k, v in redis_client.hgetall("rc:{acme}:usage").items()}
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert usage["llm_calls"] == usage[f"llm_calls:{today}"] == fake_llm.chat_completed == 2
    assert usage["prompt_tokens"] == fake_llm.total_prompt_tokens
    assert usage["completion_tokens"] == fake_llm.total_completion_tokens
    per_session = sum(memory(client, tenant, s)["tokens"] for s in ("s1", "s2"))
    assert per_session == usage["prompt_tokens"] + usage["completion_tokens"]


def test_token_window_policy_folds_by_tokens(llm_app, make_tenant):
    client = llm_app(window_size=100).test_client()
    tenant = make_tenant("acme", window_tokens=100)
    for i in range(4):
        post(client, tenant, "s1", f"[[k{i}]] " + "word " * 30)  # ~35 tokens each
    # 3 x ~39 tokens > 100: the fold keeps at most 50 tokens, then the 4th fits again.
    assert wait_until(lambda: memory(client, tenant, "s1")["context"] is not None)
    body = memory(client, tenant, "s1")
    assert len(body["messages"]) < 4 and body["pending_summary"] == 0
    assert sum(m["token_count"] for m in body["messages"]) <= 100
    assert markers_everywhere(body) == Counter(f"[[k{i}]]" for i in range(4))


def test_an_overflowing_append_claims_its_fold_in_its_own_round_trip(
    llm_app, make_tenant, fake_llm, redis_client, count_round_trips
):
    if isinstance(redis_client, redis.RedisCluster):
        pytest.skip("on Redis Cluster the due set lives in another slot: the claim is its own round trip")
    # The longest auth cache: a refresh would be a round trip of its own.
    client = llm_app(auth_cache_seconds=1).test_client()
    tenant = make_tenant()
    for i in range(4):
        post(client, tenant, "s1", f"[[k{i}]]")  # the window (4) is full, not over
    fake_llm.hold()
    try:
        trips = count_round_trips()
        post(client, tenant, "s1", "[[k4]]")
        assert trips.sent == 1
        # Claimed, not merely marked due: the score is the lease's end, and the fold runs.
        lease_end = redis_client.zscore("rc:due", "acme:s1")
        assert lease_end is not None and lease_end > time.time() + 5
        assert fake_llm.wait_for_calls(1, timeout=5)
    finally:
        fake_llm.release()
    assert wait_until(lambda: settled(client, tenant, "s1"))
    assert markers_everywhere(memory(client, tenant, "s1")) == Counter(f"[[k{i}]]" for i in range(5))


def test_appends_during_a_local_fold_skip_the_claim_and_are_folded_after_it(
    llm_app, make_tenant, fake_llm, redis_client, count_round_trips
):
    """While this process folds a session, further overflowing POSTs to it claim nothing
    (on a single node each stays one round trip; on Cluster no claim script runs); when the
    fold ends it checks the window again, so their messages are folded too — exactly once."""
    app = llm_app(auth_cache_seconds=1)  # the longest: an auth refresh is a round trip
    client = app.test_client()
    tenant = make_tenant()
    schedule = app.extensions["recollect"].fold_due
    claims = Counter()
    claim_one = schedule.claim

    def counting_claim(*args, **kwargs):
        claims["claim"] += 1
        return claim_one(*args, **kwargs)

    schedule.claim = counting_claim
    fake_llm.hold()
    try:
        for i in range(5):
            post(client, tenant, "s1", f"[[k{i}]]")  # the fifth overflows: the fold starts
        assert fake_llm.wait_for_calls(1, timeout=5)
        before = claims["claim"]
        post(client, tenant, "s1", "[[k5]]")  # (after the wait: refreshes the auth cache)
        trips = count_round_trips()
        for i in range(6, 12):
            post(client, tenant, "s1", f"[[k{i}]]")
        assert claims["claim"] == before  # in flight here: no claim per POST
        if not isinstance(redis_client, redis.RedisCluster):
            assert trips.sent == 6
    finally:
        fake_llm.release()
    assert wait_until(lambda: settled(client, tenant, "s1"))
    body = memory(client, tenant, "s1")
    assert markers_everywhere(body) == Counter(f"[[k{i}]]" for i in range(12))
    assert fake_llm.chat_calls >= 2  # the re-check after the first fold folded the rest
