"""Property-based fuzzing of everything a client controls (issue 7 §3; api.md §4).

Bodies (arbitrary JSON and near-valid message objects), raw bytes sent as JSON, the
``/sessions`` query string, session ids in the path, ``Idempotency-Key``,
``Authorization``/``x-metal-api-key`` and ``X-Request-ID`` values, and tenant policies
through the operator API — all through the Flask test client of one app. For every input:

* never a 5xx;
* every error is exactly ``{"error": {"code": str, "message": str}}`` with ``X-Request-ID``;
* every success has the documented shape, and what was accepted reads back unchanged.
"""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import quote

import orjson
import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from tests.conftest import ADMIN
from tests.security.conftest import assert_error_shape, memory_url, sid_path

FUZZ = {
    "deadline": None,
    "database": None,  # leave no .hypothesis/ directory in the repository
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}

# --- strategies ---------------------------------------------------------------------------

ODD_CHARACTERS = ["\x00", "\u2028", "\ufeff", "\U0001f600", "\x7f", "\x85", '"', "\\", "\u0301"]
SURROGATES = ["\ud800", "\udfff", "\udc00"]
characters = st.one_of(st.characters(codec="utf-8"), st.sampled_from(ODD_CHARACTERS))
short_text = st.text(characters, max_size=24)
# Long strings (up to a few KB) without making hypothesis draw thousands of characters.
long_text = st.builds(
    lambda piece, times: piece * times, st.text(characters, min_size=1, max_size=8), st.integers(100, 600)
)
with_surrogate = st.builds(
    lambda text, s, i: text[:i] + s + text[i:], short_text, st.sampled_from(SURROGATES), st.integers(0, 24)
)
any_text = st.one_of(short_text, short_text, long_text, with_surrogate)
huge_ints = st.one_of(
    st.integers(min_value=2**63 - 2, max_value=2**70), st.integers(min_value=-(2**70), max_value=-(2**63) + 2)
)
int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
clean_scalars = st.one_of(
    st.none(), st.booleans(), int64, st.floats(allow_nan=False, allow_infinity=False), short_text
)
scalars = st.one_of(clean_scalars, clean_scalars, huge_ints, st.floats(), with_surrogate)


def json_of(leaves):
    return st.recursive(
        leaves,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(short_text, inner, max_size=4)),
        max_leaves=12,
    )


clean_json = json_of(clean_scalars)
json_values = json_of(scalars)
roles = st.one_of(
    st.sampled_from(["Human", "AI", "user", "assistant", "system", "tool"]),
    st.text(characters, min_size=1, max_size=40),
)
valid_message = st.fixed_dictionaries(
    {"role": roles, "content": st.one_of(short_text, long_text)},
    optional={"metadata": st.one_of(st.none(), st.dictionaries(short_text, clean_json, max_size=5))},
)
near_valid_message = st.fixed_dictionaries(
    {"role": st.one_of(roles, any_text, json_values), "content": st.one_of(any_text, json_values)},
    optional={
        "metadata": json_values,
        "id": json_values,
        "created_at": json_values,
        "tool_calls": json_values,
    },
)
message = st.one_of(valid_message, valid_message, valid_message, near_valid_message)
memory_body = st.one_of(
    st.fixed_dictionaries(
        {"messages": st.lists(message, max_size=4)},
        optional={"context": st.one_of(short_text, long_text, any_text, json_values)},
    ),
    st.fixed_dictionaries(
        {"messages": st.lists(valid_message, max_size=4)}, optional={"context": short_text}
    ),
    st.fixed_dictionaries({"messages": json_values}),
    json_values,
)
# What an HTTP header value can carry (latin-1, no CR/LF).
header_text = st.text(
    st.one_of(
        st.characters(min_codepoint=0x20, max_codepoint=0x7E),
        st.characters(min_codepoint=0xA0, max_codepoint=0xFF),
        st.sampled_from(["\t", "\x7f", "\x80"]),
    ),
    max_size=300,
)


def encode(body: object, ascii_only: bool) -> bytes:
    """JSON text of ``body``; lone surrogates become invalid UTF-8 when not escaped."""
    return json.dumps(body, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


# --- oracles ------------------------------------------------------------------------------

MESSAGE_FIELDS = {
    "id",
    "role",
    "content",
    "created_at",
    "token_count",
    "metadata",
    "name",
    "tool_call_id",
    "tool_calls",
}
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def assert_message_shape(m: object) -> None:
    assert isinstance(m, dict) and {"id", "role", "content", "created_at"} <= set(m) <= MESSAGE_FIELDS, m
    assert isinstance(m["id"], int) and m["id"] >= 1
    assert isinstance(m["role"], str) and isinstance(m["content"], str)
    assert ISO_MS.match(m["created_at"]), m["created_at"]
    assert isinstance(m.get("token_count", 0), int)
    assert isinstance(m.get("metadata", {}), dict)
    assert isinstance(m.get("name", ""), str) and isinstance(m.get("tool_call_id", ""), str)
    calls = m.get("tool_calls", [{"id": "x", "function": {"name": "f"}}])
    assert isinstance(calls, list) and calls, "an empty list of calls is not stored"
    assert all(
        isinstance(c, dict) and isinstance(c.get("id"), str) and isinstance(c.get("function"), dict)
        for c in calls
    )


def assert_memory_shape(body: object) -> None:
    assert isinstance(body, dict) and {"messages", "context", "tokens"} <= set(body), body
    assert isinstance(body["messages"], list)
    for m in body["messages"]:
        assert_message_shape(m)
    ids = [m["id"] for m in body["messages"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)  # newest first
    assert body["context"] is None or isinstance(body["context"], str)
    assert isinstance(body["tokens"], int) and body["tokens"] >= 0
    assert isinstance(body.get("pending_summary", 0), int)


def is_valid_session_id(session_id: str) -> bool:
    """api.md §4: 1-256 bytes of UTF-8, no control characters."""
    try:
        size = len(session_id.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    return 1 <= size <= 256 and not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in session_id)


def fresh_session() -> str:
    return f"fuzz-{uuid.uuid4().hex}"


# --- tests --------------------------------------------------------------------------------


@pytest.fixture
def fuzz_client(client, tenant):
    return client, tenant


@settings(max_examples=300, **FUZZ)
@given(body=memory_body, ascii_only=st.booleans())
def test_fuzzed_memory_bodies_are_stored_verbatim_or_refused_in_the_error_shape(
    fuzz_client, body, ascii_only
):
    client, tenant = fuzz_client
    session = fresh_session()
    response = client.post(
        memory_url("", session),
        data=encode(body, ascii_only),
        content_type="application/json",
        headers=tenant.headers,
    )
    event(f"status {response.status_code}")
    if response.status_code != 200:
        assert_error_shape(response)
        assert response.status_code in (400, 413, 422), response.get_data()
        read = client.get(memory_url("", session), headers=tenant.headers).json
        assert read["messages"] == [] and read["context"] is None  # nothing of a refusal is stored
        return
    messages = body["messages"]
    assert response.json == {"status": "Ok", "message_ids": list(range(1, len(messages) + 1))}
    read = client.get(memory_url("", session), headers=tenant.headers)
    assert read.status_code == 200
    assert_memory_shape(read.json)
    stored = list(reversed(read.json["messages"]))
    assert [(m["role"], m["content"]) for m in stored] == [(m["role"], m["content"]) for m in messages]
    assert [m.get("metadata") for m in stored] == [m.get("metadata") or None for m in messages]
    assert read.json["context"] == (body.get("context") or None)  # an empty summary reads as null
    for index in range(len(messages)):
        single = client.get(memory_url("", session, f"messages/{index + 1}"), headers=tenant.headers)
        assert single.status_code == 200 and single.json == stored[index]


@settings(max_examples=150, **FUZZ)
@given(
    raw=st.one_of(
        st.binary(max_size=2048),
        st.text(st.characters(), max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    ),
    route=st.sampled_from(["memory", "retrieval"]),
    prefix=st.sampled_from(["", "/v1/motorhead"]),
)
def test_raw_bytes_sent_as_json_never_cause_a_server_error(fuzz_client, raw, route, prefix):
    client, tenant = fuzz_client
    response = client.post(
        memory_url(prefix, fresh_session(), route),
        data=raw,
        content_type="application/json",
        headers=tenant.headers,
    )
    if response.status_code >= 400:
        assert_error_shape(response)
    else:
        assert response.status_code == 200
        body = response.json["data"] if prefix else response.json
        if route == "memory":
            assert body["status"] == "Ok" and all(isinstance(i, int) for i in body["message_ids"])
        else:  # retrieval, once long-term memory lands: a fresh session has nothing to find
            assert body == []


@pytest.fixture
def listed_sessions(client, tenant):
    """Twelve sessions, and the tenant's whole listing in order, as the paging reference."""
    for n in range(12):
        body = {"messages": [{"role": "Human", "content": "x"}]}
        assert (
            client.post(memory_url("", f"listed-{n:02}"), json=body, headers=tenant.headers).status_code
            == 200
        )
    reference = client.get("/sessions?size=100", headers=tenant.headers).json
    assert sorted(reference) == [f"listed-{n:02}" for n in range(12)]
    return client, tenant, reference


@settings(max_examples=150, **FUZZ)
@given(
    page=st.one_of(st.none(), header_text, st.integers(-5, 20).map(str), st.integers(-5, 2_000_000).map(str)),
    size=st.one_of(st.none(), header_text, st.integers(-5, 200).map(str)),
    extra=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)
def test_fuzzed_session_listing_queries_answer_the_right_page_or_a_400(listed_sessions, page, size, extra):
    client, tenant, reference = listed_sessions
    query = {k: v for k, v in extra.items() if k not in ("page", "size")}
    if page is not None:
        query["page"] = page
    if size is not None:
        query["size"] = size
    response = client.get("/sessions", query_string=query, headers=tenant.headers)
    plain = {name: value for name, value in (("page", page), ("size", size)) if value is not None}
    in_range = {"page": range(1, 1_000_001), "size": range(1, 101)}
    if all(v.isascii() and v.isdigit() and int(v) in in_range[k] for k, v in plain.items()):
        assert response.status_code == 200, response.get_data()
        number, per_page = int(page or 1), int(size or 10)
        assert response.json == reference[(number - 1) * per_page : number * per_page]
    if response.status_code == 200:
        listed = response.json
        assert isinstance(listed, list) and all(isinstance(s, str) for s in listed)
        assert set(listed) <= set(reference)
    else:
        assert_error_shape(response)
        assert response.status_code == 400 and response.json["error"]["code"] == "invalid_parameter"
    if any(not v.strip().lstrip("+-").isdigit() for v in plain.values() if v.isascii()):
        assert response.status_code == 400


@settings(max_examples=200, **FUZZ)
@given(
    session=st.one_of(
        st.text(characters, max_size=80),
        st.text(st.characters(), max_size=300),
        st.binary(min_size=1, max_size=40),
    )
)
def test_fuzzed_session_ids_round_trip_or_are_refused(fuzz_client, session):
    """Any id a path can carry: valid ids (1-256 bytes, no control characters) work on
    every session route; others get 400 ``invalid_session_id`` (or 404 when the path has
    no id at all); invalid UTF-8 never breaks anything."""
    client, tenant = fuzz_client
    if isinstance(session, str):
        assume(not any(0xD800 <= ord(c) < 0xE000 for c in session))  # not encodable in a URL
        path = sid_path(session)
    else:
        path = quote(session, safe="")
    body = {"messages": [{"role": "Human", "content": "fuzz"}]}
    responses = {
        "post": client.post(f"/sessions/{path}/memory", json=body, headers=tenant.headers),
        "get": client.get(f"/sessions/{path}/memory", headers=tenant.headers),
        "message": client.get(f"/sessions/{path}/messages/1", headers=tenant.headers),
        "delete": client.delete(f"/sessions/{path}/memory", headers=tenant.headers),
        "after": client.get(f"/sessions/{path}/memory", headers=tenant.headers),
    }
    event(f"post {responses['post'].status_code}")
    for response in responses.values():
        if response.status_code >= 400:
            assert_error_shape(response)
    if isinstance(session, str) and is_valid_session_id(session):
        assert [r.status_code for r in responses.values()] == [200] * 5, session
        assert [m["content"] for m in responses["get"].json["messages"]][-1:] == ["fuzz"]
        assert responses["message"].json["content"] == "fuzz"
        assert responses["after"].json["messages"] == []
    elif isinstance(session, str):
        for response in responses.values():
            assert response.status_code in (400, 404), (session, response.status_code)
            if response.status_code == 400:
                assert response.json["error"]["code"] == "invalid_session_id"


@settings(max_examples=100, **FUZZ)
@given(key=header_text)
def test_fuzzed_idempotency_keys_replay_or_are_refused(fuzz_client, key):
    client, tenant = fuzz_client
    session = fresh_session()
    headers = tenant.headers | {"Idempotency-Key": key}
    body = {"messages": [{"role": "Human", "content": "once"}]}
    first = client.post(memory_url("", session), json=body, headers=headers)
    if first.status_code != 200:
        assert_error_shape(first)
        assert first.status_code == 400 and first.json["error"]["code"] == "invalid_idempotency_key"
        assert not 1 <= len(key.strip()) <= 255 or len(key) > 255
        return
    assert len(key) <= 255
    retry = client.post(memory_url("", session), json=body, headers=headers)
    assert retry.status_code == 200 and retry.get_data() == first.get_data()
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert len(client.get(memory_url("", session), headers=tenant.headers).json["messages"]) == 1


def mutations(key: str):
    """Near misses of a real key: one character replaced, dropped, added, case-flipped."""
    return st.one_of(
        st.builds(
            lambda i, c: key[:i] + c + key[i + 1 :],
            st.integers(0, len(key) - 1),
            st.characters(min_codepoint=0x21, max_codepoint=0x7E),
        ),
        st.builds(lambda i: key[:i] + key[i + 1 :], st.integers(0, len(key) - 1)),
        st.builds(
            lambda i, c: key[:i] + c + key[i:],
            st.integers(0, len(key)),
            st.characters(min_codepoint=0x21, max_codepoint=0x7E),
        ),
        st.just(key.swapcase()),
        st.builds(lambda rest: key[:16] + rest, header_text),
    )


@settings(max_examples=200, **FUZZ)
@given(
    data=st.data(),
    header=st.sampled_from(["Authorization", "x-metal-api-key"]),
    request_id=st.one_of(st.none(), header_text),
)
def test_fuzzed_credentials_authenticate_only_the_exact_key(fuzz_client, addresses, data, header, request_id):
    """Garbage, near-miss keys and schemes: 401 in the error shape with a Bearer
    challenge; 200 only for exactly the tenant's key (padding aside). X-Request-ID is
    echoed when it is a sane token, replaced otherwise."""
    client, tenant = fuzz_client
    candidate = data.draw(st.one_of(header_text, mutations(tenant.key), st.just(tenant.key)))
    value = data.draw(
        st.sampled_from(
            [
                candidate,
                f"Bearer {candidate}",
                f"bearer {candidate}",
                f"Basic {candidate}",
                f"Bearer  {candidate} ",
            ]
        )
    )
    headers = {header: value}
    if request_id is not None:
        headers["X-Request-ID"] = request_id
    response = client.get("/keys/current", headers=headers, environ_base={"REMOTE_ADDR": next(addresses)})
    presented = value.partition(" ")[2] if header == "Authorization" else value
    exact = presented.strip() == tenant.key and (
        header != "Authorization" or value.lower().startswith("bearer ")
    )
    if exact:
        assert response.status_code == 200 and response.json == {"tenant_id": "acme", "key_id": tenant.key_id}
    else:
        assert response.status_code == 401, (header, value)
    if response.status_code == 401:
        assert_error_shape(response)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    if request_id and re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", request_id):
        assert response.headers["X-Request-ID"] == request_id
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
    admin = client.get(
        "/admin/tenants", headers={"Authorization": value}, environ_base={"REMOTE_ADDR": next(addresses)}
    )
    assert admin.status_code == 401  # a tenant key, or anything near it, is never the operator token


RATE_LIMITS = [
    "1/second",
    "0/minute",
    "5 per 2 hours",
    "1/second;2/minute",
    "10/day",
    "1 per 100 years",
    "99999999999999999999/second",
    "1/99999999999999 seconds",
    "1/0 second",
    "1/1e9 second",
    "-1/second",
    "1/second;",
    ";",
    "1 / second",
    "1/second,2/minute",
    "1/fortnight",
    "1 per 1000000000000 day",
    "1 per 1000 years",
]
counts = st.one_of(
    st.none(), st.integers(-5, 200), st.integers(-5, 10**7), huge_ints, st.sampled_from([0, 1, 2])
)
texts = st.one_of(st.none(), short_text, long_text, with_surrogate)
policy_fields = {
    "rate_limit": st.one_of(st.none(), st.sampled_from(RATE_LIMITS), short_text),
    "session_ttl_seconds": counts,
    "window_size": counts,
    "window_tokens": counts,
    "max_message_bytes": counts,
    "max_sessions": counts,
    "summary_model": st.one_of(
        texts, st.sampled_from(["gpt-4o", "gpt-3.5-turbo", "llama3", "o1", "gpt-4o:ft"])
    ),
    "summary_prompt": texts,
    "summary_token_budget_daily": counts,
    "name": texts,
}
policy_patch = st.fixed_dictionaries({}, optional=policy_fields)


@settings(max_examples=150, **FUZZ)
@given(patch=st.one_of(policy_patch, policy_patch, policy_patch, json_values))
@example(patch={"rate_limit": "1/99999999999999 seconds"})  # accepted, then every request 500s
def test_fuzzed_tenant_policies_are_refused_or_leave_the_tenant_working(client, make_tenant, patch):
    """Whatever policy the operator API accepts, the tenant's requests still never 5xx."""
    victim = make_tenant(f"t{uuid.uuid4().hex[:12]}")
    response = client.patch(f"/admin/tenants/{victim.id}", json=patch, headers=ADMIN)
    event(f"patch {response.status_code}")
    if response.status_code != 200:
        assert_error_shape(response)
        assert response.status_code in (400, 415, 422)  # 415: a JSON null is no body at all
        return
    assert response.json["tenant"]["id"] == victim.id
    for method, url, kwargs in (
        ("post", memory_url("", "s1"), {"json": {"messages": [{"role": "Human", "content": "x" * 100}]}}),
        ("get", memory_url("", "s1"), {}),
        ("get", "/sessions", {}),
        ("get", "/usage", {}),
    ):
        result = getattr(client, method)(url, headers=victim.headers, **kwargs)
        if result.status_code >= 400:
            assert_error_shape(result)
            assert result.status_code in (403, 413, 429), result.get_data()


DEEP_METADATA_LEVELS = [10, 100, 253, 254, 255, 300, 1000]


@pytest.mark.parametrize("levels", DEEP_METADATA_LEVELS)
def test_deeply_nested_metadata_is_stored_or_refused_never_a_500(client, tenant, levels):
    """JSON the parser accepts (orjson reads up to 1024 levels) must not crash the
    serializer (orjson writes at most 254): deep metadata is stored or refused with 4xx."""
    nested = '{"k":' * levels + '"leaf"' + "}" * levels  # json.dumps itself stops near 1000
    raw = '{"messages":[{"role":"Human","content":"deep","metadata":' + nested + "}]}"
    response = client.post(
        memory_url("", f"deep-{levels}"), data=raw, content_type="application/json", headers=tenant.headers
    )
    if response.status_code == 200:
        stored = client.get(memory_url("", f"deep-{levels}"), headers=tenant.headers).json
        assert stored["messages"][0]["metadata"] == orjson.loads(nested)
    else:
        assert_error_shape(response)
        assert response.status_code in (400, 413, 422)


@pytest.mark.parametrize("rate_limit", RATE_LIMITS)
def test_every_rate_limit_the_operator_api_accepts_can_be_enforced(client, make_tenant, rate_limit):
    """A rate limit is validated when it is set: either PATCH refuses it (422) or the
    tenant's requests are served or limited (200/429) — never a 500 on every request."""
    victim = make_tenant("limited")
    response = client.patch("/admin/tenants/limited", json={"rate_limit": rate_limit}, headers=ADMIN)
    if response.status_code != 200:
        assert_error_shape(response)
        assert response.status_code == 422
        return
    for _ in range(3):
        served = client.get("/sessions", headers=victim.headers)
        assert served.status_code in (200, 429), (rate_limit, served.get_data())
