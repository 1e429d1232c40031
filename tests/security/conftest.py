"""Helpers and fixtures shared by the security suite.

The suite attacks the app through the Flask test client on the real redis-server (or local
Redis Cluster) that ``tests/conftest.py`` starts. Helpers here describe *what is observable*
of a tenant — through its own API view and through its raw Redis keys — so a test can prove
that another tenant's requests changed nothing of it, byte for byte.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
import redis

PREFIXES = ("", "/motorhead", "/v1/motorhead")


def sid_path(session_id: str) -> str:
    """A session id as a client puts it in a path: every byte but unreserved ones
    percent-encoded, and dots too, so ``.``/``..`` cannot be mistaken for dot segments."""
    return quote(session_id, safe="").replace(".", "%2E")


def memory_url(prefix: str, session_id: str, tail: str = "memory") -> str:
    return f"{prefix}/sessions/{sid_path(session_id)}/{tail}"


def unwrap(prefix: str, body: Any) -> Any:
    """``/v1/motorhead`` wraps successful bodies as ``{"data": ...}`` (errors are not)."""
    if prefix == "/v1/motorhead" and isinstance(body, dict) and set(body) == {"data"}:
        return body["data"]
    return body


def assert_error_shape(response) -> None:
    """api.md §4: exactly ``{"error": {"code": str, "message": str}}`` with a request id,
    never a 5xx, never a stack trace."""
    assert response.status_code < 500, (response.status_code, response.get_data()[:300])
    assert response.mimetype == "application/json", response.mimetype
    body = response.get_json(silent=True)
    assert isinstance(body, dict) and set(body) == {"error"}, response.get_data()[:300]
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"code", "message"}, body
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert response.headers.get("X-Request-ID")
    assert b"Traceback" not in response.get_data()


def tenant_redis_keys(client: redis.Redis, tenant_id: str) -> list[bytes]:
    """Every data key of one tenant (sessions and tenant-wide keys) plus its records."""
    keys: set[bytes] = set()
    for pattern in (f"rc:{{{tenant_id}:*", f"rc:{{{tenant_id}}}:*"):
        keys.update(client.scan_iter(match=pattern, count=1000))
    for exact in (f"rc:tenant:{tenant_id}", f"rc:tenant:{tenant_id}:keys"):
        if client.exists(exact):
            keys.add(exact.encode())
    return sorted(keys)


def redis_snapshot(client: redis.Redis, tenant_id: str) -> dict[bytes, bytes | None]:
    """The serialized value (``DUMP``) of every key of the tenant: equal snapshots mean
    not one byte of the tenant's stored data changed."""
    return {key: client.dump(key) for key in tenant_redis_keys(client, tenant_id)}


def api_snapshot(client, headers: dict[str, str], session_ids: Iterable[str]) -> dict[str, bytes]:
    """What the tenant itself sees, as raw response bytes: each session's memory and every
    message in it, the session listing and the usage report."""
    seen: dict[str, bytes] = {}
    for session_id in session_ids:
        memory = client.get(memory_url("", session_id), headers=headers)
        assert memory.status_code == 200
        seen[f"memory {session_id!r}"] = memory.get_data()
        for message in memory.json["messages"]:
            single = client.get(memory_url("", session_id, f"messages/{message['id']}"), headers=headers)
            assert single.status_code == 200
            seen[f"message {session_id!r} {message['id']}"] = single.get_data()
        history = client.get(memory_url("", session_id, "messages?limit=100"), headers=headers)
        assert history.status_code == 200
        seen[f"history {session_id!r}"] = history.get_data()
        retrieval = client.post(
            memory_url("", session_id, "retrieval"), json={"text": "q a"}, headers=headers
        )
        assert retrieval.status_code == 200
        seen[f"retrieval {session_id!r}"] = retrieval.get_data()
    seen["search"] = b"".join(search_hits(client, headers, "q a summary"))
    listing = client.get("/sessions?page=1&size=100", headers=headers)
    assert listing.status_code == 200
    seen["sessions"] = listing.get_data()
    usage = client.get("/usage", headers=headers)
    assert usage.status_code == 200
    seen["usage"] = usage.get_data()
    return seen


def search_hits(client, headers: dict[str, str], text: str) -> list[bytes]:
    """The tenant-wide search's hits, each as the raw JSON of (session, id, content)."""
    response = client.post("/search", json={"text": text, "k": 50}, headers=headers)
    assert response.status_code == 200, response.get_data()
    return sorted(f"{hit['session_id']}|{hit['id']}|{hit['content']}".encode() for hit in response.json)


@pytest.fixture
def addresses() -> Iterator[str]:
    """A fresh client address per call, so deliberately failed authentications never add
    up to the per-address brute-force block (which ``test_auth_security`` covers)."""
    counter = itertools.count(1)
    return (f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}" for n in counter)
