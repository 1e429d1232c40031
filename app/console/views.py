"""The operator console's pages: sign-in, tenants, a tenant, a session.

Every page is plain HTML from Jinja templates and works without JavaScript (htmx only
narrows the tenant list as one types). The console authenticates itself (``_guard``): a
signed session cookie from signing in with the admin token, and a CSRF token on every
form that changes anything. Tenant data goes through the same domain services, and
policy changes through the same validation, as the admin API.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response, current_app, g, redirect, render_template, request, url_for
from pydantic import ValidationError

from app.console import signin
from app.console.charts import bar_chart, sparkline
from app.domain.clock import utc_iso
from app.domain.errors import Conflict, InvalidField, NotFound, RecollectError
from app.domain.tenancy import api_keys
from app.domain.tenancy.authentication import Principal
from app.domain.tenancy.policy import POLICY_FIELDS
from app.domain.tenancy.tenants import validate_tenant_id
from app.domain.tenancy.usage import DayUsage
from app.errors import status_for
from app.extensions import Resources
from app.http import describe_validation_error  # the 422 message PATCH /admin/tenants/{id} gives
from app.schemas import TenantPatch

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
)

DAYS = 30
SESSIONS_PER_PAGE = 20
HISTORY_PER_PAGE = 50
SEARCH_RESULTS = 10
# Reachable without signing in (the sign-in form itself is still CSRF-checked).
_OPEN_ENDPOINTS = frozenset({"console.sign_in", "console.static"})
# The policy form: field → (label, input type, hint).
POLICY_FORM: dict[str, tuple[str, str, str]] = {
    "rate_limit": ("Rate limit", "text", "flask-limiter syntax, e.g. 600/minute;30/second"),
    "session_ttl_seconds": ("Session TTL (seconds)", "number", "0 = never expire"),
    "window_size": ("Window size (messages)", "number", "2-1000"),
    "window_tokens": ("Window token budget", "number", "64-1000000"),
    "max_message_bytes": ("Largest message (bytes)", "number", "64 bytes to 16 MiB"),
    "max_sessions": ("Most sessions", "number", "at least 1"),
    "summary_model": ("Summary model", "text", ""),
    "summary_prompt": ("Summary prompt", "textarea", ""),
    "summary_token_budget_daily": ("Daily LLM token budget", "number", "0 = unlimited"),
    "long_term_memory": ("Long-term memory", "select", "archive and search"),
}
assert set(POLICY_FORM) == set(POLICY_FIELDS), "every policy field has a place in the form"


def _resources() -> Resources:
    return current_app.extensions["recollect"]


def _admin_token() -> str:
    token = _resources().settings.admin_token
    assert token is not None  # _guard answered 404 otherwise
    return token.get_secret_value()


# --- access ---------------------------------------------------------------------------


@bp.before_request
def _guard() -> Response | None:
    """404 without an admin token; the session cookie (or a new, signed-out one); the
    CSRF token on every POST; the sign-in page for anyone not signed in."""
    token = _resources().settings.admin_token
    if token is None:
        raise NotFound("not found")  # like /admin: without an operator token it does not exist
    if request.endpoint == "console.static":
        return None
    session = signin.read_session(request, token.get_secret_value())
    if session is None:
        session = signin.new_session(signed_in=False)
        g.console_cookie = session
    g.console = session
    if request.method == "POST" and not session.csrf_matches(request.form.get(signin.CSRF_FIELD)):
        return _page(
            "error.html",
            403,
            title="Form expired",
            message="This form is no longer valid (or did not come from the console). "
            "Go back, reload the page and try again.",
        )
    if not session.signed_in and request.endpoint not in _OPEN_ENDPOINTS:
        return redirect(url_for("console.sign_in"), 303)
    return None


@bp.after_request
def _write_cookie(response: Response) -> Response:
    session = g.get("console_cookie")
    if session is not None:
        signin.set_cookie(response, session, _admin_token(), secure=request.is_secure)
    if g.get("console_sign_out"):
        signin.clear_cookie(response, secure=request.is_secure)
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'"
    )
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


@bp.errorhandler(RecollectError)
def _domain_error(exc: RecollectError) -> Response:
    return _page("error.html", status_for(exc), title="Not possible", message=exc.message)


def _page(template: str, status: int = 200, **context: Any) -> Response:
    session = g.get("console")
    html = render_template(
        f"console/{template}",
        csrf_token=session.csrf if session is not None else "",
        signed_in=bool(session and session.signed_in),
        **context,
    )
    return Response(html, status=status, mimetype="text/html")


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Response:
    if request.method == "GET":
        if g.console.signed_in:
            return redirect(url_for("console.tenants"), 303)
        return _page("sign_in.html", title="Sign in")
    presented = request.form.get("token", "")
    if presented and api_keys.token_matches(presented, _admin_token()):
        g.console_cookie = signin.new_session(signed_in=True)  # a fresh CSRF token too
        return redirect(url_for("console.tenants"), 303)
    guard = current_app.extensions.get("recollect_auth_guard")
    wait = guard.failed(request.remote_addr) if guard is not None else None
    if wait is not None:
        response = _page(
            "sign_in.html",
            429,
            title="Sign in",
            error=f"Too many failed sign-ins from this address. Try again in {wait} seconds.",
        )
        response.headers["Retry-After"] = str(wait)
        return response
    return _page("sign_in.html", 401, title="Sign in", error="That is not the admin token.")


@bp.post("/sign-out")
def sign_out() -> Response:
    g.console_sign_out = True
    g.pop("console_cookie", None)
    return redirect(url_for("console.sign_in"), 303)


@bp.get("/")
def home() -> Response:
    return redirect(url_for("console.tenants"), 303)


# --- tenants --------------------------------------------------------------------------


def _totals(days: list[DayUsage]) -> dict[str, list[int]]:
    return {
        "messages": [d.messages for d in days],
        "llm_calls": [d.llm_calls for d in days],
        "tokens": [d.tokens for d in days],
        "rate_limited": [d.rate_limited for d in days],
    }


@bp.get("/tenants")
def tenants() -> Response:
    return _tenants_page()


def _tenants_page(
    *, status: int = 200, create_error: str | None = None, create_values: dict[str, str] | None = None
) -> Response:
    resources = _resources()
    query = request.args.get("q", "").strip().lower()
    listed = sorted(resources.registry.list_tenants(), key=lambda t: t.id)
    if query:
        listed = [t for t in listed if query in t.id or query in t.name.lower()]
    usage = resources.usage.daily([t.id for t in listed], days=DAYS)
    rows = []
    for tenant in listed:
        days = usage[tenant.id]
        messages = [d.messages for d in days]
        label = f"{tenant.id}: messages per day, last {DAYS} days, {sum(messages)} in all"
        rows.append({"tenant": tenant, "today": days[-1], "sparkline": sparkline(messages, label=label)})
    return _page(
        "tenants.html",
        status,
        title="Tenants",
        rows=rows,
        query=query,
        days=DAYS,
        create_error=create_error,
        create_values=create_values or {"id": "", "name": ""},
    )


@bp.post("/tenants")
def create_tenant() -> Response:
    tenant_id = request.form.get("id", "").strip()
    name = request.form.get("name", "").strip()[:200]
    try:
        _, key = _resources().registry.create_tenant(validate_tenant_id(tenant_id), name=name or None)
    except (InvalidField, Conflict) as exc:
        return _tenants_page(
            status=status_for(exc), create_error=exc.message, create_values={"id": tenant_id, "name": name}
        )
    return _tenant_page(tenant_id, new_key=key, notice=f"Tenant {tenant_id} created.", status=201)


@bp.get("/tenants/<tenant_id>")
def tenant(tenant_id: str) -> Response:
    notice = {"saved": "Policy saved.", "revoked": "Key revoked.", "deleted": "Session deleted."}.get(
        request.args.get("done", "")
    )
    return _tenant_page(tenant_id, notice=notice)


def _page_number() -> int:
    raw = request.args.get("page", "1")
    return max(1, int(raw)) if raw.isdigit() else 1


def _tenant_page(
    tenant_id: str,
    *,
    status: int = 200,
    new_key: api_keys.NewKey | None = None,
    notice: str | None = None,
    policy_error: str | None = None,
    form_values: dict[str, str] | None = None,
) -> Response:
    resources = _resources()
    tenant = resources.registry.get_tenant(tenant_id)
    effective = resources.registry.defaults.resolve(tenant.policy)
    keys = resources.registry.list_keys(tenant_id)
    days = resources.usage.daily([tenant_id], days=DAYS)[tenant_id]
    series = _totals(days)
    day_names = [d.day for d in days]
    charts = [
        ("Messages", bar_chart(day_names, series["messages"], title="Messages per day")),
        ("LLM calls", bar_chart(day_names, series["llm_calls"], title="LLM calls per day")),
        ("LLM tokens", bar_chart(day_names, series["tokens"], title="LLM tokens per day")),
        ("Rate-limited (429)", bar_chart(day_names, series["rate_limited"], title="429 answers per day")),
    ]
    page = _page_number()
    sessions, session_count = resources.memory.recent_sessions(
        tenant_id,
        ttl_seconds=effective.session_ttl_seconds,
        offset=(page - 1) * SESSIONS_PER_PAGE,
        count=SESSIONS_PER_PAGE,
    )
    overrides = tenant.policy.model_dump()
    values = form_values or {
        name: ""
        if overrides[name] is None
        else str(overrides[name]).lower()
        if isinstance(overrides[name], bool)
        else str(overrides[name])
        for name in POLICY_FIELDS
    }
    return _page(
        "tenant.html",
        status,
        title=f"Tenant {tenant.id}",
        tenant=tenant,
        defaults=resources.registry.defaults.to_dict(),
        effective=effective.to_dict(),
        policy_form=POLICY_FORM,
        values=values,
        name_value=(form_values or {}).get("name", tenant.name),
        policy_error=policy_error,
        keys=keys,
        new_key=new_key,
        notice=notice,
        charts=charts,
        days=days,
        sessions=[(sid, utc_iso(ms)) for sid, ms in sessions],
        session_count=session_count,
        page=page,
        per_page=SESSIONS_PER_PAGE,
        pages=max(1, -(-session_count // SESSIONS_PER_PAGE)),
    )


@bp.post("/tenants/<tenant_id>/policy")
def update_policy(tenant_id: str) -> Response:
    """The form as ``PATCH /admin/tenants/{id}`` would receive it: an empty field is
    ``null`` (back to the default), and the same model validates it."""
    registry = _resources().registry
    registry.get_tenant(tenant_id)
    form = {name: request.form.get(name, "").strip() for name in POLICY_FIELDS}
    fields: dict[str, Any] = {name: value or None for name, value in form.items()}
    name = request.form.get("name", "").strip()
    if name:
        fields["name"] = name
    try:
        body = TenantPatch.model_validate(fields)
    except ValidationError as exc:
        return _tenant_page(
            tenant_id,
            status=422,
            policy_error=describe_validation_error(exc),
            form_values=form | {"name": name},
        )
    patch = body.model_dump(include=set(POLICY_FIELDS), exclude_unset=True)
    registry.update_tenant(tenant_id, name=body.name, policy_patch=patch)
    return redirect(url_for("console.tenant", tenant_id=tenant_id, done="saved"), 303)


@bp.post("/tenants/<tenant_id>/keys")
def create_key(tenant_id: str) -> Response:
    label = request.form.get("label", "").strip()[:200] or None
    key = _resources().registry.create_key(tenant_id, label=label)
    return _tenant_page(tenant_id, status=201, new_key=key, notice="Key created.")


@bp.post("/tenants/<tenant_id>/keys/<key_id>/revoke")
def revoke_key(tenant_id: str, key_id: str) -> Response:
    _resources().registry.revoke_key(tenant_id, key_id)
    return redirect(url_for("console.tenant", tenant_id=tenant_id, done="revoked"), 303)


# --- a session ------------------------------------------------------------------------


def _principal(tenant_id: str) -> Principal:
    principal = _resources().authenticator.principal_for(tenant_id)
    if principal is None:
        raise NotFound(f"tenant {tenant_id!r} not found", code="tenant_not_found")
    return principal


def _session_id() -> str:
    session_id = request.values.get("id", "")
    if not session_id:
        raise NotFound("no session named", code="session_not_found")
    return session_id


def _messages(raw: list[bytes]) -> list[dict[str, Any]]:
    messages = []
    for item in raw:
        message = orjson.loads(item)
        if message.get("metadata") is not None:
            message["metadata_json"] = orjson.dumps(message["metadata"]).decode()
        messages.append(message)
    return messages


@bp.route("/tenants/<tenant_id>/session", methods=["GET"])
def session(tenant_id: str) -> Response:
    return _session_page(tenant_id, _session_id())


def _session_page(
    tenant_id: str,
    session_id: str,
    *,
    results: list[dict[str, Any]] | None = None,
    search_text: str = "",
    search_error: str | None = None,
) -> Response:
    resources = _resources()
    principal = _principal(tenant_id)
    memory = resources.memory.read(principal, session_id)
    window = _messages(memory.view.messages_json)
    before_arg = request.args.get("before", "")
    if before_arg.isdigit():
        before: int | None = int(before_arg)
    else:
        before = min((m["id"] for m in window), default=None)
    older = resources.memory.history(principal, session_id, before=before, limit=HISTORY_PER_PAGE)
    return _page(
        "session.html",
        title=f"Session {session_id}",
        tenant_id=tenant_id,
        session_id=session_id,
        memory=memory,
        window=window,
        older=_messages(older.messages_json),
        next_before=older.next_before,
        long_term_memory=principal.policy.long_term_memory,
        results=results,
        search_text=search_text,
        search_error=search_error,
    )


@bp.post("/tenants/<tenant_id>/session/search")
def search_session(tenant_id: str) -> Response:
    """``POST /search`` restricted to this session, through the same search service."""
    session_id = _session_id()
    text = request.form.get("text", "").strip()
    principal = _principal(tenant_id)
    if not text:
        return _session_page(tenant_id, session_id, search_error="Type something to search for.")
    try:
        hits = _resources().search.search(
            principal, text, k=SEARCH_RESULTS, mode="auto", session_ids=[session_id]
        )
    except RecollectError as exc:
        return _session_page(tenant_id, session_id, search_text=text, search_error=exc.message)
    results = [hit.message | {"dist": round(hit.dist, 4)} for hit in hits]
    return _session_page(tenant_id, session_id, results=results, search_text=text)


@bp.get("/tenants/<tenant_id>/session/delete")
def confirm_delete(tenant_id: str) -> Response:
    _principal(tenant_id)
    return _page("confirm_delete.html", title="Delete session", tenant_id=tenant_id, session_id=_session_id())


@bp.post("/tenants/<tenant_id>/session/delete")
def delete_session(tenant_id: str) -> Response:
    _resources().memory.delete(_principal(tenant_id), _session_id())
    return redirect(url_for("console.tenant", tenant_id=tenant_id, done="deleted"), 303)
