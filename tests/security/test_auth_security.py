"""Authentication under attack (issue 7 §3; api.md §1): brute force is rate-limited per
client address across workers, secrets are compared in constant time, a revoked key fails
on every worker within a second, and no credential or conversation ever reaches a log line.
"""

from __future__ import annotations

import logging
import secrets
import string
import time
import uuid

import pytest

from app.domain.tenancy import api_keys as keymod
from tests.conftest import ADMIN, ADMIN_TOKEN, tenant_registry
from tests.security.conftest import PREFIXES, assert_error_shape, memory_url, unwrap

AUTH_FAILURE_LIMIT = 20
ALPHABET = string.ascii_letters + string.digits


def random_secret() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(43))


def wrong_credentials(tenant) -> list[tuple[str, dict[str, str]]]:
    """Every kind of failed authentication: each one counts against the address."""
    unknown = f"rk_{'Z' * 12}_{random_secret()}"
    return [
        ("/sessions", {"Authorization": f"Bearer rk_{tenant.key_id}_{random_secret()}"}),  # real id
        ("/sessions", {"Authorization": f"Bearer {unknown}"}),
        ("/sessions", {"Authorization": "Bearer not-a-key"}),
        ("/keys/current", {"x-metal-api-key": f"rk_{tenant.key_id}_{random_secret()}"}),
        ("/sessions/s1/memory", {"Authorization": f"Basic {tenant.key}"}),
        ("/admin/tenants", {"Authorization": "Bearer not-the-admin-token"}),
        ("/v1/motorhead/sessions", {"x-metal-api-key": unknown}),
    ]


def test_brute_force_from_one_address_is_blocked_after_20_failures_on_every_worker(make_app, tenant):
    """Failures of every kind — forged secrets of a real key id, unknown ids, malformed
    keys, wrong operator tokens — count together per address in Redis, so two workers
    share the count: the 21st failure is a 429 with ``Retry-After`` wherever it lands, while
    a good key from that same address is still served, and other addresses are unaffected.
    Spoofing ``X-Forwarded-For`` (no trusted proxy configured) does not change the address."""
    workers = [make_app().test_client(), make_app().test_client()]
    attacker = {"REMOTE_ADDR": "203.0.113.7"}
    bystander = {"REMOTE_ADDR": "198.51.100.9"}
    kinds = wrong_credentials(tenant)
    for attempt in range(AUTH_FAILURE_LIMIT):
        path, headers = kinds[attempt % len(kinds)]
        spoofed = headers | {"X-Forwarded-For": f"192.0.2.{attempt}"}
        response = workers[attempt % 2].get(path, headers=spoofed, environ_base=attacker)
        assert response.status_code == 401, (attempt, path, response.get_data())
        assert_error_shape(response)
    for worker in workers:
        path, headers = kinds[0]
        blocked = worker.get(path, headers=headers, environ_base=attacker)
        assert blocked.status_code == 429, blocked.get_data()
        assert_error_shape(blocked)
        assert 1 <= int(blocked.headers["Retry-After"]) <= 61
        # Blocked failures never block a valid credential from the same address.
        assert worker.get("/sessions", headers=tenant.headers, environ_base=attacker).status_code == 200
        assert worker.get("/admin/tenants", headers=ADMIN, environ_base=attacker).status_code == 200
        # Another address: its good key works and its failures are plain 401s.
        assert worker.get("/sessions", headers=tenant.headers, environ_base=bystander).status_code == 200
        assert worker.get(path, headers=headers, environ_base=bystander).status_code == 401


def test_a_neighbours_failures_never_change_a_valid_keys_answers(client, tenant, other_tenant):
    """Every tenant behind one NAT address shares it: one of them failing (a bad deploy, an
    attacker) must not lock out the others, nor the operator."""
    nat = {"REMOTE_ADDR": "198.51.100.77"}
    wrong = {"Authorization": f"Bearer rk_{'Q' * 12}_{random_secret()}"}
    for round_ in range(3):
        for _ in range(AUTH_FAILURE_LIMIT + 5):
            client.get("/sessions", headers=wrong, environ_base=nat)
            client.get("/admin/tenants", headers={"Authorization": "Bearer nope"}, environ_base=nat)
        assert client.get("/sessions", headers=wrong, environ_base=nat).status_code == 429
        for handle in (tenant, other_tenant):
            good = client.post(
                "/sessions/s/memory",
                json={"messages": [{"role": "Human", "content": f"round {round_}"}]},
                headers=handle.headers,
                environ_base=nat,
            )
            assert good.status_code == 200, good.get_data()
            assert "Retry-After" not in good.headers
        assert client.get("/admin/tenants", headers=ADMIN, environ_base=nat).status_code == 200


def test_guesses_at_one_key_id_are_limited_across_addresses_and_its_owner_still_passes(client, tenant):
    """A guesser spread over many addresses meets the per-key-id count."""
    statuses = [
        client.get(
            "/sessions",
            headers={"Authorization": f"Bearer rk_{tenant.key_id}_{random_secret()}"},
            environ_base={"REMOTE_ADDR": f"192.0.2.{i}"},
        ).status_code
        for i in range(AUTH_FAILURE_LIMIT + 1)
    ]
    assert statuses == [401] * AUTH_FAILURE_LIMIT + [429]
    fresh = {"REMOTE_ADDR": "192.0.2.200"}
    guess = {"Authorization": f"Bearer rk_{tenant.key_id}_{random_secret()}"}
    assert client.get("/sessions", headers=guess, environ_base=fresh).status_code == 429
    assert client.get("/sessions", headers=tenant.headers, environ_base=fresh).status_code == 200


def test_successful_authentications_do_not_count_towards_the_block(client, tenant):
    address = {"REMOTE_ADDR": "203.0.113.8"}
    for _ in range(50):
        assert client.get("/sessions", headers=tenant.headers, environ_base=address).status_code == 200
    wrong = {"Authorization": f"Bearer rk_{tenant.key_id}_{random_secret()}"}
    statuses = [
        client.get("/sessions", headers=wrong, environ_base=address).status_code
        for _ in range(AUTH_FAILURE_LIMIT + 1)
    ]
    assert statuses == [401] * AUTH_FAILURE_LIMIT + [429]


@pytest.fixture
def compare_spy(monkeypatch):
    """Records every ``hmac.compare_digest`` call made through ``app.domain.keys``."""
    calls: list[tuple[bytes, bytes, bool]] = []
    real = keymod.hmac.compare_digest

    def spy(a, b):
        result = real(a, b)
        calls.append((a, b, result))
        return result

    monkeypatch.setattr(keymod.hmac, "compare_digest", spy)
    return calls


def test_api_key_secrets_are_compared_with_compare_digest_for_known_and_unknown_key_ids(
    client, tenant, redis_client, compare_spy
):
    """The presented secret's SHA-256 is compared with ``hmac.compare_digest`` against the
    stored digest — and, for a key id that does not exist, against a dummy digest of the
    same length, so both failures take the same path."""
    stored = redis_client.hget(f"rc:key:{tenant.key_id}", "hash").decode()

    wrong_secret = random_secret()
    forged = client.get(
        "/keys/current", headers={"Authorization": f"Bearer rk_{tenant.key_id}_{wrong_secret}"}
    )
    assert forged.status_code == 401
    presented = keymod.hash_secret(wrong_secret).encode()
    assert (presented, stored.encode(), False) in compare_spy

    compare_spy.clear()
    unknown_secret = random_secret()
    unknown = client.get("/keys/current", headers={"x-metal-api-key": f"rk_{'Q' * 12}_{unknown_secret}"})
    assert unknown.status_code == 401
    matching = [c for c in compare_spy if c[0] == keymod.hash_secret(unknown_secret).encode()]
    assert len(matching) == 1, "an unknown key id must be compared like a known one"
    assert len(matching[0][1]) == len(stored) and matching[0][2] is False
    assert forged.get_data() == unknown.get_data()

    compare_spy.clear()
    assert client.get("/keys/current", headers=tenant.headers).status_code == 200
    assert (keymod.hash_secret(tenant.key[-43:]).encode(), stored.encode(), True) in compare_spy


def test_the_operator_token_is_compared_with_compare_digest_on_equal_length_digests(client, compare_spy):
    for guess in ("", "x", ADMIN_TOKEN[:-1], ADMIN_TOKEN + "x", "y" * 500):
        compare_spy.clear()
        assert (
            client.get(
                "/admin/tenants",
                headers={"Authorization": f"Bearer {guess}"},
                environ_base={"REMOTE_ADDR": f"10.1.0.{len(guess) % 250}"},
            ).status_code
            == 401
        )
        assert compare_spy, guess
        assert all(len(a) == len(b) and result is False for a, b, result in compare_spy), guess
    compare_spy.clear()
    assert client.get("/admin/tenants", headers=ADMIN).status_code == 200
    assert any(result for _, _, result in compare_spy)


REVOCATION_BOUND = 1.0
POLL_STEP = 0.02
# One polling round (a few test-client requests plus the sleep) after the bound.
POLL_SLACK = 0.25


@pytest.mark.parametrize("revoked_by", ["admin_api", "cli"])
def test_a_revoked_key_fails_on_every_worker_within_a_second(make_app, tenant, redis_client, revoked_by):
    """Two workers (app instances on one Redis) with the production cache lifetime (1 s),
    both having just authenticated the key under every prefix and header: after the
    revocation — by the operator API on one worker, or the CLI from outside — each fails
    within 1 s; the tenant's other key keeps working everywhere."""
    workers = [make_app(auth_cache_seconds=1.0).test_client() for _ in range(2)]
    spare = workers[0].post("/admin/tenants/acme/keys", json={"label": "spare"}, headers=ADMIN).json
    spare_headers = {"Authorization": f"Bearer {spare['api_key']}"}
    styles = [{"Authorization": f"Bearer {tenant.key}"}, {"x-metal-api-key": tenant.key}]
    probes = [(w, prefix, style) for w in range(2) for prefix in PREFIXES for style in range(2)]
    for w, prefix, style in probes:  # warm every cache
        assert workers[w].get(f"{prefix}/keys/current", headers=styles[style]).status_code == 200

    revoked_at = time.monotonic()
    if revoked_by == "admin_api":
        response = workers[0].delete(f"/admin/tenants/acme/keys/{tenant.key_id}", headers=ADMIN)
        assert response.status_code == 200
    else:
        tenant_registry(redis_client).revoke_key("acme", tenant.key_id)
    failed_after: dict[tuple, float] = {}
    while len(failed_after) < len(probes):
        for probe in probes:
            if probe in failed_after:
                continue
            w, prefix, style = probe
            response = workers[w].get(
                f"{prefix}/keys/current",
                headers=styles[style],
                environ_base={"REMOTE_ADDR": f"10.2.{w}.{style}"},
            )
            if response.status_code == 401:
                failed_after[probe] = time.monotonic() - revoked_at
            else:
                assert response.status_code == 200
        assert time.monotonic() - revoked_at <= REVOCATION_BOUND + POLL_SLACK, (
            f"revoked key still accepted by {set(probes) - set(failed_after)}"
        )
        time.sleep(POLL_STEP)
    assert max(failed_after.values()) <= REVOCATION_BOUND + POLL_SLACK, failed_after
    for worker in workers:
        for prefix in PREFIXES:
            current = worker.get(f"{prefix}/keys/current", headers=spare_headers)
            assert unwrap(prefix, current.json) == {"tenant_id": "acme", "key_id": spare["key_id"]}


# --- nothing secret in the logs -------------------------------------------------------------

OPENAI_KEY = "sk-test-OPENAI-SECRET-" + uuid.uuid4().hex
STANDARD_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def record_text(record: logging.LogRecord) -> str:
    """Everything a handler could write for a record: the message with its arguments,
    exception and stack text, and any extra fields a structured formatter would emit."""
    parts = [record.getMessage(), record.exc_text or "", record.stack_info or ""]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    parts.extend(f"{k}={v!r}" for k, v in vars(record).items() if k not in STANDARD_RECORD_FIELDS)
    return "\n".join(parts)


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_no_credential_message_content_summary_or_session_id_ever_reaches_a_log_line(
    make_app, fake_llm, caplog, monkeypatch
):
    """A whole run at DEBUG — the operator API, every tenant route under every prefix,
    authentication failures, client errors, an unexpected exception quoting request data,
    a rate-limited tenant, and summaries written by an LLM — and not one log record carries
    a key (or its secret part), the operator token, the LLM key, a message, metadata, a
    summary, a retrieval query or a session id."""
    caplog.set_level(logging.DEBUG)
    app = make_app(
        summarizer="openai",
        openai_api_key=OPENAI_KEY,
        openai_base_url=fake_llm.base_url,
        window_size=4,
        sweep_interval_seconds=0.05,
        llm_max_retries=0,
        log_level="DEBUG",
    )
    client = app.test_client()
    tag = uuid.uuid4().hex[:10]
    secrets_seen: list[str] = [ADMIN_TOKEN, OPENAI_KEY]

    def remember(*values: str) -> None:
        secrets_seen.extend(values)

    # The operator API: a tenant, a second key, listing, policies, usage.
    created = client.post("/admin/tenants", json={"id": "logco", "name": "Log Co"}, headers=ADMIN)
    assert created.status_code == 201
    key = created.json["api_key"]
    second = client.post("/admin/tenants/logco/keys", json={"label": "second"}, headers=ADMIN).json
    doomed = client.post("/admin/tenants", json={"id": "doomed"}, headers=ADMIN).json["api_key"]
    remember(key, key[-43:], second["api_key"], second["api_key"][-43:], doomed, doomed[-43:])
    for method, path, body in (
        ("get", "/admin/tenants", None),
        ("get", "/admin/tenants/logco", None),
        ("patch", "/admin/tenants/logco", {"summary_prompt": f"PROMPT-{tag} summarize"}),
        ("get", "/admin/tenants/logco/keys", None),
        ("get", "/admin/tenants/logco/usage", None),
        ("delete", f"/admin/tenants/logco/keys/{second['key_id']}", None),
        ("delete", "/admin/tenants/doomed", None),
    ):
        assert getattr(client, method)(path, json=body, headers=ADMIN).status_code == 200, path
    remember(f"PROMPT-{tag}")
    headers = {"Authorization": f"Bearer {key}"}

    # Every tenant route, under every prefix, with distinctive data.
    for index, prefix in enumerate(PREFIXES):
        session = f"sess-{tag}-{index}"
        content = f"CONTENT-{tag}-{index}"
        remember(
            session,
            content,
            f"META-{tag}-{index}",
            f"CTX-{tag}-{index}",
            f"QUERY-{tag}-{index}",
            f"IDEM-{tag}-{index}",
        )
        body = {
            "messages": [{"role": "Human", "content": content, "metadata": {"m": f"META-{tag}-{index}"}}],
            "context": f"CTX-{tag}-{index}",
        }
        idem = headers | {"Idempotency-Key": f"IDEM-{tag}-{index}"}
        for _ in range(2):  # the second is a replay
            assert client.post(memory_url(prefix, session), json=body, headers=idem).status_code == 200
        for method, tail, payload in (
            ("get", "memory", None),
            ("get", "messages/1", None),
            ("post", "retrieval", {"text": f"QUERY-{tag}-{index}"}),
            ("get", "messages?limit=10", None),
            ("get", f"context?model=gpt-4o&max_tokens=500&query=QUERY-{tag}-{index}", None),
            ("delete", "messages/1", None),
            ("delete", "messages/1", None),  # 404
            ("delete", "memory", None),
        ):
            response = getattr(client, method)(
                memory_url(prefix, session, tail), json=payload, headers=headers
            )
            assert response.status_code < 500
        for path in ("/sessions?page=1&size=5", "/keys/current", "/usage"):
            assert client.get(f"{prefix}{path}", headers=headers).status_code == 200
        searched = client.post(f"{prefix}/search", json={"text": f"QUERY-{tag}-{index}"}, headers=headers)
        assert searched.status_code == 200

    # Authentication failures with credentials that must not be echoed into the log.
    forged = f"rk_{created.json['key_id']}_{random_secret()}"
    guess = f"admin-guess-{tag}"
    remember(forged[-43:], guess)
    for request_headers, path in (
        ({"Authorization": f"Bearer {forged}"}, "/sessions"),
        ({"x-metal-api-key": forged}, "/keys/current"),
        ({"Authorization": f"Bearer {second['api_key']}"}, "/sessions"),  # revoked
        ({"Authorization": f"Bearer {doomed}"}, "/usage"),  # tenant deleted
        ({"Authorization": f"Bearer {key}", "x-metal-api-key": second["api_key"]}, "/sessions"),
        ({"Authorization": f"Bearer {guess}"}, "/admin/tenants"),
        ({"Authorization": f"Bearer {key}"}, "/admin/tenants"),
    ):
        response = client.get(path, headers=request_headers, environ_base={"REMOTE_ADDR": "10.3.0.1"})
        assert response.status_code == 401

    # Client errors whose requests carry distinctive data.
    bad = f"BAD-{tag}"
    remember(bad)
    for method, path, kwargs in (
        (
            "post",
            f"/sessions/{bad}-json/memory",
            {"data": f'{{"messages": "{bad}', "content_type": "application/json"},
        ),
        ("post", f"/sessions/{bad}-422/memory", {"json": {"messages": [{"role": 5, "content": bad}]}}),
        ("post", f"/sessions/{bad}-415/memory", {"data": bad, "content_type": "text/plain"}),
        (
            "post",
            f"/sessions/{bad}-413/memory",
            {"json": {"messages": [{"role": "Human", "content": bad * 8000}]}},
        ),
        ("get", f"/sessions/{bad}%0A/memory", {}),
        ("get", f"/sessions?page={bad}", {}),
        ("get", f"/{bad}/nowhere", {}),
        ("put", f"/sessions/{bad}/memory", {}),
        ("get", f"/sessions/{bad}/messages/99", {}),
    ):
        response = getattr(client, method)(path, headers=headers, **kwargs)
        assert 400 <= response.status_code < 500, (path, response.status_code)

    # An unexpected failure whose exception text quotes request data: a 500, logged
    # with its traceback frames but not the exception's text.
    from app.domain.memory.service import MemoryService

    def explode(self, principal, session_id):
        raise RuntimeError(f"boom while reading {session_id} with {key}")

    monkeypatch.setattr(MemoryService, "read", explode)
    exploded = client.get(f"/sessions/{bad}-500/memory", headers=headers)
    assert exploded.status_code == 500
    assert_error_shape_500(exploded)
    monkeypatch.undo()

    # Summaries by the LLM: a window of 4 overflows, older messages are folded.
    session = f"sess-{tag}-summarized"
    contents = [f"FOLD-{tag}-{n} [[m-{tag}-{n}]]" for n in range(8)]
    remember(session, *contents, *(f"[[m-{tag}-{n}]]" for n in range(8)))
    for n in range(0, 8, 2):
        messages = [{"role": "Human", "content": contents[n]}, {"role": "AI", "content": contents[n + 1]}]
        assert (
            client.post(memory_url("", session), json={"messages": messages}, headers=headers).status_code
            == 200
        )

    def summarized() -> bool:
        body = client.get(memory_url("", session), headers=headers).json
        return bool(body["context"]) and body["pending_summary"] == 0

    assert wait_until(summarized), "the fake LLM never summarized the session"
    summary = client.get(memory_url("", session), headers=headers).json["context"]
    remember(summary)
    assert fake_llm.chat_completed >= 1

    # A rate-limited tenant.
    client.patch("/admin/tenants/logco", json={"rate_limit": "2/minute"}, headers=ADMIN)
    statuses = [client.get("/sessions", headers=headers).status_code for _ in range(4)]
    assert statuses[-1] == 429

    records = list(caplog.records)
    assert sum(r.name.startswith("recollect") for r in records) >= 50  # the capture did capture
    leaks = [
        (record.name, record.levelname, needle, record.getMessage()[:200])
        for record in records
        for needle in secrets_seen
        if needle and needle in record_text(record)
    ]
    assert leaks == []


def assert_error_shape_500(response) -> None:
    body = response.json
    assert body == {"error": {"code": "internal_error", "message": "internal error"}}
    assert response.headers["X-Request-ID"]
