"""The operator console in a real browser: Debian's Chromium driven by Playwright, against
the app under gunicorn with a real redis-server. Screenshots of every page go to
``test-artifacts/console/`` (git-ignored)."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ADMIN_TOKEN
from tests.e2e.servers import ROOT, Gunicorn, Nginx, call

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "console"

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is a dev extra: pip install -e '.[dev]'"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make test installs it with apt-get)")
    with playwright_api.sync_playwright() as playwright:
        # --no-sandbox: the tests run as root in CI, where Chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def console_server(start_gunicorn: Callable[..., Gunicorn]) -> Gunicorn:
    return start_gunicorn(RECOLLECT_WINDOW_SIZE="4", GUNICORN_WORKERS="2")


@pytest.fixture
def open_page(browser) -> Iterator[Callable[..., object]]:
    contexts = []

    def open_page(width: int = 1280, height: int = 900):
        context = browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page, base: str) -> None:
    page.goto(f"{base}/console/")
    assert page.url.endswith("/console/sign-in")
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/console/tenants")


def test_an_operator_manages_a_tenant_its_keys_policy_usage_and_sessions(console_server, open_page):
    base = console_server.base
    page = open_page()
    page.goto(f"{base}/console/")
    screenshot(page, "sign-in")
    page.get_by_label("Admin token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "That is not the admin token."
    sign_in(page, base)

    # Create a tenant: its first key is shown once and works through the API.
    page.get_by_label("Tenant id").fill("shop")
    page.get_by_label("Name (optional)").fill("The Shop")
    page.get_by_role("button", name="Create tenant").click()
    page.wait_for_selector("#new-key-value")
    first_key = page.input_value("#new-key-value")
    assert call(base, "GET", "/keys/current", first_key).json["tenant_id"] == "shop"

    # Create a second key, then revoke it: 401 through the API within a second.
    page.get_by_label("Label (optional)").fill("rotation")
    page.get_by_role("button", name="Create key").click()
    second_key = page.input_value("#new-key-value")
    assert second_key != first_key
    key_id = call(base, "GET", "/keys/current", second_key).json["key_id"]
    page.get_by_role("button", name=f"Revoke key {key_id}").click()
    page.get_by_text("Key revoked.").wait_for()
    revoked_at = time.monotonic()
    while call(base, "GET", "/keys/current", second_key).status != 401:
        assert time.monotonic() - revoked_at < 1.0, "the revoked key still works after 1 s"
        time.sleep(0.05)
    assert call(base, "GET", "/keys/current", first_key).status == 200

    # A bad policy value shows the admin API's 422 message in the form; a good one is saved.
    api = call(base, "PATCH", "/admin/tenants/shop", body={"window_size": 1}, headers=_admin())
    assert api.status == 422
    page.get_by_label("Window size (messages)").fill("1")
    page.get_by_role("button", name="Save policy").click()
    alert = page.get_by_role("alert")
    assert alert.inner_text() == api.json["error"]["message"]
    assert page.get_by_label("Window size (messages)").input_value() == "1"
    screenshot(page, "tenant-policy-error")
    page.get_by_label("Window size (messages)").fill("4")
    page.get_by_label("Rate limit").fill("1000/minute")
    page.get_by_role("button", name="Save policy").click()
    page.get_by_text("Policy saved.").wait_for()
    policy = call(base, "GET", "/admin/tenants/shop", headers=_admin()).json["tenant"]["policy"]
    assert policy == {"window_size": 4, "rate_limit": "1000/minute"}

    # Messages posted through the API show in the usage chart and in the session view.
    for i in range(3):
        body = {"messages": [{"role": "user", "content": f"browser message {i}"}]}
        assert call(base, "POST", "/sessions/chat-1/memory", first_key, body).status == 200
    page.reload()
    chart = page.locator("svg.chart").first
    assert re.search(r"3 in all, at most 3 a day, 3 today", chart.get_attribute("aria-label"))
    assert page.locator("svg.chart").first.locator("rect").count() == 30
    screenshot(page, "tenant")

    page.goto(f"{base}/console/tenants")
    row = page.get_by_role("row").filter(has_text="shop")
    assert row.get_by_role("cell").first.inner_text() == "3"  # today's messages
    screenshot(page, "tenants")
    # The search narrows the list as one types (htmx), and works as a plain form without it.
    page.get_by_label("Search by id or name").fill("nothing-like-it")
    page.get_by_text("No tenant matches").wait_for()
    page.goto(f"{base}/console/tenants?q=sho")
    assert page.get_by_role("link", name="shop").is_visible()

    page.goto(f"{base}/console/tenants/shop")
    page.get_by_role("link", name="chat-1").click()
    page.wait_for_url(re.compile(r"/session\?id=chat-1$"))
    window = page.get_by_role("list", name="Window messages")
    assert window.get_by_text("browser message 2").is_visible()
    assert page.locator("#window-count").inner_text() == "3"
    deadline = time.monotonic() + 10
    while page.locator("#pending-index").inner_text() != "0":
        assert time.monotonic() < deadline, "the messages were not indexed"
        time.sleep(0.2)
        page.reload()
    page.get_by_label("Search for").fill("message")
    page.get_by_role("button", name="Search").click()
    results = page.get_by_role("list", name="Search results")
    assert results.get_by_role("listitem").count() == 3
    screenshot(page, "session")

    # Delete the session, after a confirmation page.
    page.get_by_role("link", name="Delete this session…").click()
    screenshot(page, "confirm-delete")
    page.get_by_role("button", name="Delete session").click()
    page.get_by_text("Session deleted.").wait_for()
    assert page.get_by_text("No sessions.").is_visible()
    assert call(base, "GET", "/sessions/chat-1/memory", first_key).json["messages"] == []


def _admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_the_session_cookie_flags_and_a_forged_form_is_refused(console_server, open_page):
    base = console_server.base
    page = open_page()
    sign_in(page, base)
    (cookie,) = page.context.cookies()
    assert cookie["name"] == "recollect_console" and cookie["path"] == "/console"
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False  # plain http on loopback; behind TLS it is Secure (tests/api)
    assert 7.9 * 3600 < cookie["expires"] - time.time() <= 8 * 3600
    assert page.evaluate("document.cookie") == ""  # out of reach of scripts

    call(base, "POST", "/admin/tenants", body={"id": "victim"}, headers=_admin())
    page.goto(f"{base}/console/tenants/victim")
    page.evaluate("document.querySelectorAll('input[name=csrf_token]').forEach(i => { i.value = 'forged' })")
    page.get_by_label("Window size (messages)").fill("8")
    page.get_by_role("button", name="Save policy").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Form expired"
    screenshot(page, "csrf-refused")
    assert call(base, "GET", "/admin/tenants/victim", headers=_admin()).json["tenant"]["policy"] == {}

    # Signing out ends the session: the pages send the browser back to the sign-in form.
    page.goto(f"{base}/console/tenants")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{base}/console/sign-in")
    page.goto(f"{base}/console/tenants/victim")
    assert page.url == f"{base}/console/sign-in"


def test_at_phone_width_with_the_keyboard_alone(console_server, open_page):
    base = console_server.base
    call(
        base,
        "POST",
        "/admin/tenants",
        body={"id": "pocket", "name": "A tenant seen on a phone"},
        headers=_admin(),
    )
    page = open_page(width=390, height=844)
    page.goto(f"{base}/console/sign-in")
    # Keyboard only: the token field has focus, Enter submits.
    assert page.evaluate("document.activeElement.id") == "token"
    page.keyboard.type(ADMIN_TOKEN)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/console/tenants")
    for path, name in (("/console/tenants", "phone-tenants"), ("/console/tenants/pocket", "phone-tenant")):
        page.goto(f"{base}{path}")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 390 px"
        screenshot(page, name)
    # Every input of the tenant page has a label.
    unlabelled = page.evaluate(
        """[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
            .filter(e => !e.labels || e.labels.length === 0).map(e => e.name)"""
    )
    assert unlabelled == []
    # Tab order reaches the policy form's first field from the page's top.
    page.goto(f"{base}/console/tenants/pocket")
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "f-name":
            break
    else:
        pytest.fail("the policy form cannot be reached with Tab")


def test_nginx_keeps_the_console_on_the_internal_network(
    console_server: Gunicorn, start_nginx: Callable[..., Nginx]
) -> None:
    nginx = start_nginx(console_server)
    outsider = "127.0.0.2"  # not in the allow lists (they name 127.0.0.1 only)
    for path in ("/console/sign-in", "/console/", "/console/static/console.css"):
        assert call(nginx.base, "GET", path, source=outsider).status == 403, path
    assert call(nginx.base, "GET", "/console/sign-in").status == 200
