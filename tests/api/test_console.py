"""The operator console through the Flask test client: its own cookie sign-in, CSRF on
every form, the policy form validated exactly like PATCH /admin/tenants/{id}, keys, usage,
sessions. (tests/e2e/test_console_browser.py drives the same pages in Chromium.)"""

from __future__ import annotations

import html
import logging
import re
import time

import pytest

from tests.conftest import ADMIN, ADMIN_TOKEN

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ALERT = re.compile(r'role="alert"[^>]*>([^<]*)<')


def csrf_of(page: str) -> str:
    match = CSRF.search(page)
    assert match, page
    return match.group(1)


def alert_of(page: str) -> str:
    match = ALERT.search(page)
    assert match, page
    return html.unescape(match.group(1))


def sign_in(client, token: str = ADMIN_TOKEN, **environ: str):
    page = client.get("/console/sign-in", environ_base=environ)
    return client.post(
        "/console/sign-in", data={"csrf_token": csrf_of(page.text), "token": token}, environ_base=environ
    )


@pytest.fixture
def console(client):
    """A test client signed in to the console; ``console.csrf`` for its forms."""
    assert sign_in(client).status_code == 303
    client.csrf = csrf_of(client.get("/console/tenants").text)
    return client


def post(console, path: str, **form: str):
    return console.post(path, data={"csrf_token": console.csrf, **form})


def append(client, tenant, session_id: str, *contents: str) -> None:
    body = {"messages": [{"role": "user", "content": c} for c in contents]}
    assert client.post(f"/sessions/{session_id}/memory", json=body, headers=tenant.headers).status_code == 200


# --- access ---------------------------------------------------------------------------


def test_without_an_admin_token_the_console_does_not_exist(make_app):
    client = make_app(admin_token=None).test_client()
    for path in ("/console/", "/console/sign-in", "/console/tenants", "/console/static/console.css"):
        assert client.get(path).status_code == 404, path
    assert client.post("/console/sign-in", data={"token": "x"}).status_code == 404


def test_pages_need_a_signed_in_session_not_a_bearer_header(client, tenant):
    for path in (
        "/console/",
        "/console/tenants",
        "/console/tenants/acme",
        "/console/tenants/acme/session?id=s",
    ):
        response = client.get(path, headers=ADMIN)
        assert response.status_code == 303 and response.headers["Location"] == "/console/sign-in", path
    assert client.get("/console/static/console.css").status_code == 200  # the sign-in page's style
    # A tenant key in the path opens tenant routes only.
    assert client.get(f"/k/{tenant.key}/console/sign-in").status_code == 404


def test_sign_in_sets_a_strict_http_only_expiring_cookie_and_sign_out_clears_it(client):
    response = sign_in(client)
    assert response.status_code == 303 and response.headers["Location"] == "/console/tenants"
    cookie = response.headers["Set-Cookie"]
    flags = {part.strip() for part in cookie.split(";")}
    assert {"HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=28800"} <= flags
    assert "Secure" not in flags  # plain http here; see the next test
    assert ADMIN_TOKEN not in cookie
    page = client.get("/console/tenants")
    assert page.status_code == 200 and "Sign out" in page.text
    out = client.post("/console/sign-out", data={"csrf_token": csrf_of(page.text)})
    assert out.status_code == 303 and "Max-Age=0" in out.headers["Set-Cookie"]
    assert client.get("/console/tenants").status_code == 303


def test_the_cookie_is_secure_behind_tls(make_app):
    client = make_app(proxy_count=1).test_client()
    page = client.get("/console/sign-in", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in page.headers["Set-Cookie"]
    response = client.post(
        "/console/sign-in",
        data={"csrf_token": csrf_of(page.text), "token": ADMIN_TOKEN},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert response.status_code == 303 and "Secure" in response.headers["Set-Cookie"]


def test_a_wrong_token_is_refused_and_failures_are_limited_per_address(client):
    page = client.get("/console/sign-in")
    token = csrf_of(page.text)
    wrong = client.post("/console/sign-in", data={"csrf_token": token, "token": "nope"})
    assert wrong.status_code == 401 and alert_of(wrong.text) == "That is not the admin token."
    statuses = [
        client.post("/console/sign-in", data={"csrf_token": token, "token": f"nope{i}"}).status_code
        for i in range(25)
    ]
    assert 429 in statuses and statuses[-1] == 429
    blocked = client.post("/console/sign-in", data={"csrf_token": token, "token": "nope"})
    assert int(blocked.headers["Retry-After"]) >= 1
    # The right token still passes from the same address (as with the API's bearer tokens).
    assert (
        client.post("/console/sign-in", data={"csrf_token": token, "token": ADMIN_TOKEN}).status_code == 303
    )
    # Another address was never limited.
    other = sign_in(client.application.test_client(), "nope", REMOTE_ADDR="127.0.0.9")
    assert other.status_code == 401


def test_every_form_needs_the_session_csrf_token(console, tenant, client):
    key_id = tenant.key_id
    for path, form in (
        (f"/console/tenants/acme/keys/{key_id}/revoke", {}),
        ("/console/tenants/acme/policy", {"window_size": "6"}),
        ("/console/tenants", {"id": "evil"}),
        ("/console/tenants/acme/keys", {}),
        ("/console/tenants/acme/session/delete", {"id": "s1"}),
        ("/console/sign-out", {}),
    ):
        for token in (None, "forged", "x" * 43):
            data = dict(form) if token is None else {"csrf_token": token, **form}
            response = console.post(path, data=data)
            assert response.status_code == 403, (path, token)
            assert "Form expired" in response.text
    assert client.get("/keys/current", headers=tenant.headers).status_code == 200
    assert client.get("/admin/tenants/evil", headers=ADMIN).status_code == 404
    assert console.get("/console/tenants").status_code == 200  # still signed in
    # A sign-in form needs the CSRF token of its own (signed-out) session too.
    fresh = console.application.test_client()
    assert fresh.post("/console/sign-in", data={"token": ADMIN_TOKEN}).status_code == 403


def test_a_cookie_from_another_admin_token_is_no_session(make_app, console):
    cookie = console.get_cookie("recollect_console", path="/console")
    other = make_app(admin_token="another-admin-token-012345").test_client()
    other.set_cookie("recollect_console", cookie.value, path="/console")
    assert other.get("/console/tenants").status_code == 303


# --- tenants and keys -----------------------------------------------------------------


def test_tenants_list_searches_and_shows_todays_usage(console, make_tenant, client):
    acme, _ = make_tenant("acme"), make_tenant("globex")
    append(client, acme, "s1", "one", "two", "three")
    page = console.get("/console/tenants")
    assert page.status_code == 200
    row = re.search(
        r'<th scope="row"><a href="/console/tenants/acme">acme</a>.*?</tr>', page.text, re.S
    ).group(0)
    assert [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', row)] == [3, 0, 0, 0]
    assert 'class="sparkline"' in row and "3 in all" in row
    only = console.get("/console/tenants?q=glob").text
    assert "/console/tenants/globex" in only and "/console/tenants/acme" not in only


def test_create_a_tenant_shows_its_key_once_and_the_key_works(console, client):
    response = post(console, "/console/tenants", id="newco", name="New Co")
    assert response.status_code == 201
    key = re.search(r'id="new-key-value" readonly value="([^"]+)"', response.text).group(1)
    assert (
        client.get("/keys/current", headers={"Authorization": f"Bearer {key}"}).json["tenant_id"] == "newco"
    )
    assert key not in console.get("/console/tenants/newco").text
    bad = post(console, "/console/tenants", id="Bad Id")
    assert bad.status_code == 422 and "tenant id must be" in alert_of(bad.text)
    taken = post(console, "/console/tenants", id="newco")
    assert taken.status_code == 409 and "already exists" in alert_of(taken.text)


def test_create_and_revoke_a_key(console, tenant, client):
    created = post(console, "/console/tenants/acme/keys", label="ci")
    assert created.status_code == 201
    key = re.search(r'id="new-key-value" readonly value="([^"]+)"', created.text).group(1)
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/keys/current", headers=headers).status_code == 200
    key_id = client.get("/keys/current", headers=headers).json["key_id"]
    assert f"<code>{key_id}</code>" in created.text and ">ci<" in created.text
    revoked = post(console, f"/console/tenants/acme/keys/{key_id}/revoke")
    assert revoked.status_code == 303
    assert "Key revoked." in console.get(revoked.headers["Location"]).text
    deadline = time.monotonic() + 1.0
    while client.get("/keys/current", headers=headers).status_code != 401:
        assert time.monotonic() < deadline, "a revoked key still works after 1 s"
        time.sleep(0.05)
    assert client.get("/keys/current", headers=tenant.headers).status_code == 200  # the other key


# --- the policy form ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("window_size", "1"),
        ("window_size", "many"),
        ("rate_limit", "lots"),
        ("rate_limit", "0/minute"),
        ("session_ttl_seconds", "-5"),
        ("long_term_memory", "maybe"),
        ("max_message_bytes", "12"),
    ],
)
def test_a_bad_policy_value_shows_the_admin_apis_422_message(console, tenant, client, field, value):
    api = client.patch("/admin/tenants/acme", json={field: value}, headers=ADMIN)
    assert api.status_code == 422
    response = post(console, "/console/tenants/acme/policy", **{field: value})
    assert response.status_code == 422
    assert alert_of(response.text) == api.json["error"]["message"]
    if field != "long_term_memory":  # a select offers only its options
        assert f'name="{field}" value="{html.escape(value)}"' in response.text  # kept for correction
    assert client.get("/admin/tenants/acme", headers=ADMIN).json["tenant"]["policy"] == {}


def test_a_policy_change_is_saved_and_an_empty_field_returns_to_the_default(console, tenant, client):
    response = post(
        console,
        "/console/tenants/acme/policy",
        window_size="6",
        rate_limit="50/second",
        long_term_memory="false",
    )
    assert response.status_code == 303
    assert "Policy saved." in console.get(response.headers["Location"]).text
    policy = client.get("/admin/tenants/acme", headers=ADMIN).json["tenant"]["policy"]
    assert policy == {"window_size": 6, "rate_limit": "50/second", "long_term_memory": False}
    assert post(console, "/console/tenants/acme/policy", window_size="6").status_code == 303
    assert client.get("/admin/tenants/acme", headers=ADMIN).json["tenant"]["policy"] == {"window_size": 6}
    page = console.get("/console/tenants/acme").text
    assert 'id="f-window_size" name="window_size" value="6"' in page


# --- usage, sessions ------------------------------------------------------------------


def test_the_tenant_page_charts_30_days_of_usage(console, tenant, client, redis_client):
    from app.domain.clock import utc_day
    from app.domain.tenancy.usage import DAY_MS

    old_day = utc_day(int(time.time() * 1000) - 29 * DAY_MS)
    redis_client.hset("rc:{acme}:usage", mapping={f"messages:{old_day}": 9, f"rate_limited:{old_day}": 4})
    append(client, tenant, "s1", "a", "b")
    page = console.get("/console/tenants/acme").text
    assert page.count('<svg class="chart"') == 4
    assert f"<title>{old_day}: 9</title>" in page and f"<title>{old_day}: 4</title>" in page
    assert "Messages per day" in page and "11 in all" in page and "2 today" in page
    assert page.count('<rect x="') == 4 * 30


def test_sessions_are_listed_by_last_write_and_paged(console, tenant, client):
    for i in range(23):
        append(client, tenant, f"s{i:02d}", "x")
    time.sleep(0.01)  # scores are milliseconds
    append(client, tenant, "s00", "written again")
    first = console.get("/console/tenants/acme").text
    listed = re.findall(r'session\?id=(s\d\d)"', first)
    assert listed[:3] == ["s00", "s22", "s21"] and len(listed) == 20
    assert "Sessions (23)" in first and "Page 1 of 2" in first
    second = console.get("/console/tenants/acme?page=2").text
    assert re.findall(r'session\?id=(s\d\d)"', second) == ["s03", "s02", "s01"]


def test_the_session_page_shows_window_summary_pending_and_archive(make_app, make_tenant, redis_client):
    app = make_app(window_size=4)
    client = app.test_client()
    assert sign_in(client).status_code == 303
    tenant = make_tenant("acme", window_size=4)
    append(client, tenant, "chat/1", *(f"message number {i}" for i in range(10)))
    deadline = time.monotonic() + 10
    while True:
        page = client.get("/console/tenants/acme/session?id=chat/1").text
        if "No summary yet." not in page and 'id="pending-index">0<' in page:
            break
        assert time.monotonic() < deadline, page
        time.sleep(0.1)
    window = page.split('id="window-title"')[1].split("</section>")[0]
    archive = page.split('id="older-title"')[1].split("</section>")[0]
    assert "message number 9" in window and "message number 0" not in window
    assert "Archive" in page and "message number 0" in archive
    assert 'id="window-count">' in page and 'id="pending-summary">0<' in page
    assert 'name="text"' in page  # the search box: long-term memory is on


def test_search_finds_a_message_of_the_session(console, tenant, client):
    append(client, tenant, "s1", "the quick brown fox", "lorem ipsum")
    append(client, tenant, "s2", "a brown fox elsewhere")
    deadline = time.monotonic() + 10
    while True:
        page = post(console, "/console/tenants/acme/session/search", id="s1", text="fox").text
        if "distance" in page:
            break
        assert time.monotonic() < deadline, page
        time.sleep(0.1)
    results = page.split('aria-label="Search results"')[1].split("</ol>")[0]
    assert "the quick brown fox" in results and "elsewhere" not in results and "lorem" not in results
    empty = post(console, "/console/tenants/acme/session/search", id="s1", text="   ")
    assert alert_of(empty.text) == "Type something to search for."


def test_without_long_term_memory_there_is_no_search_box(console, make_tenant, client):
    tenant = make_tenant("acme", long_term_memory=False)
    append(client, tenant, "s1", "hello")
    page = console.get("/console/tenants/acme/session?id=s1").text
    assert "hello" in page and 'name="text"' not in page and "Older messages" in page


def test_deleting_a_session_asks_first_then_erases_it(console, tenant, client):
    append(client, tenant, "s1", "keep me?")
    confirm = console.get("/console/tenants/acme/session/delete?id=s1")
    assert confirm.status_code == 200 and "cannot be undone" in confirm.text
    assert client.get("/sessions/s1/memory", headers=tenant.headers).json["messages"]  # not yet
    response = post(console, "/console/tenants/acme/session/delete", id="s1")
    assert response.status_code == 303
    assert "Session deleted." in console.get(response.headers["Location"]).text
    assert client.get("/sessions/s1/memory", headers=tenant.headers).json["messages"] == []
    assert client.get("/sessions", headers=tenant.headers).json == []


def test_an_unknown_tenant_is_an_html_404(console):
    response = console.get("/console/tenants/nobody")
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "not found" in alert_of(response.text)


def test_no_token_and_no_tenant_content_in_any_log_line(console, tenant, client, caplog):
    caplog.set_level(logging.DEBUG)
    secret_content = "confidential-words-7781"
    append(client, tenant, "private-session-id", secret_content)
    sign_in(client.application.test_client(), "wrong-token-guess-123")
    sign_in(client.application.test_client())
    for path in ("/console/tenants", "/console/tenants/acme"):
        assert console.get(path).status_code == 200
    assert secret_content in console.get("/console/tenants/acme/session?id=private-session-id").text
    post(console, "/console/tenants/acme/session/search", id="private-session-id", text=secret_content)
    post(console, "/console/tenants/acme/keys")
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "route=/console/tenants/<tenant_id>/session" in text
    for needle in (
        ADMIN_TOKEN,
        "wrong-token-guess-123",
        secret_content,
        "private-session-id",
        tenant.key,
        "rk_",
    ):
        assert needle not in text, needle
