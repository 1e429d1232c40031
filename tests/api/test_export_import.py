"""Export and import through the API and the CLI (api.md §10), on a real Redis: NDJSON out,
streamed; a session restored exactly, searchable and under the tenant's window policy; a bad
line keeps nothing and is named; the import's own body limit."""

from __future__ import annotations

import json
import tracemalloc

import orjson
import pytest

from tests.api.test_archive import folded
from tests.api.test_search import indexed, retrieve
from tests.api.test_summarization import memory, post, wait_until
from tests.conftest import ADMIN, TenantHandle

NDJSON = {"Content-Type": "application/x-ndjson"}


def export(client, tenant: TenantHandle, session: str) -> bytes:
    response = client.get(f"/sessions/{session}/export", headers=tenant.headers)
    assert response.status_code == 200, response.data
    assert response.mimetype == "application/x-ndjson"
    return response.data


def import_(client, tenant: TenantHandle, session: str, body: bytes, *, prefix: str = ""):
    return client.post(f"{prefix}/sessions/{session}/import", data=body, headers=tenant.headers | NDJSON)


def ndjson(*objects: dict) -> bytes:
    return b"".join(orjson.dumps(o) + b"\n" for o in objects)


def lines(body: bytes) -> list[dict]:
    return [json.loads(line) for line in body.splitlines()]


def session_keys(redis_client, tenant: str = "acme") -> list[bytes]:
    """Every key of the tenant's sessions, staged imports included (all nodes of a cluster)."""
    return sorted(redis_client.scan_iter(match=f"rc:{{{tenant}:*"))


@pytest.fixture
def folding_client(make_app):
    return make_app(
        window_size=4, sweep_interval_seconds=0.05, index_sweep_interval_seconds=0.05
    ).test_client()


# --- the round trip ----------------------------------------------------------------------------


def test_export_delete_import_export_gives_the_same_lines(folding_client, tenant):
    client = folding_client
    messages = [{"role": "Human", "content": f"message {i}", "metadata": {"n": i}} for i in range(10)]
    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        }
    )
    messages.append({"role": "tool", "content": "42", "tool_call_id": "c1", "name": "f"})
    response = client.post("/sessions/s1/memory", json={"messages": messages}, headers=tenant.headers)
    assert response.status_code == 200
    assert wait_until(lambda: folded(client, tenant, "s1") and indexed(client, tenant, "s1"))
    before = export(client, tenant, "s1")
    session, *exported = lines(before)
    assert session["type"] == "session" and session["summary"] and session["summarized_through"] == 10
    assert [m["id"] for m in exported] == list(range(1, 13))
    assert exported[0]["metadata"] == {"n": 0} and exported[10]["tool_calls"][0]["id"] == "c1"

    assert client.delete("/sessions/s1/memory", headers=tenant.headers).status_code == 200
    response = import_(client, tenant, "s1", before)
    assert response.status_code == 201, response.json
    assert response.json == {
        "status": "Ok",
        "session_id": "s1",
        "messages": 12,
        "window": 2,
        "archived": 10,
        "dropped": 0,
        "last_id": 12,
        "fold_due": False,
    }
    assert export(client, tenant, "s1") == before
    assert memory(client, tenant, "s1")["context"] == session["summary"]


def test_the_next_message_gets_an_id_above_the_imported_ones(client, tenant):
    body = ndjson(
        {"type": "session", "last_id": 30}, {"type": "message", "id": 20, "role": "Human", "content": "a"}
    )
    assert import_(client, tenant, "s1", body).status_code == 201
    assert post(client, tenant, "s1", "next").json["message_ids"] == [31]


def test_imported_messages_become_searchable(client, tenant):
    body = ndjson(
        {"type": "session", "summarized_through": 1},
        {"type": "message", "role": "Human", "content": "my cat is called Miso"},
        {"type": "message", "role": "AI", "content": "the release ships in March"},
    )
    assert import_(client, tenant, "s1", body).status_code == 201
    assert wait_until(lambda: indexed(client, tenant, "s1"))
    assert [h["content"] for h in retrieve(client, tenant, "s1", "Miso")][:1] == ["my cat is called Miso"]
    assert [h["id"] for h in retrieve(client, tenant, "s1", "release")][:1] == [2]


def test_a_window_over_the_policy_is_folded_after_the_import(folding_client, tenant):
    body = ndjson(
        {"type": "session"}, *({"type": "message", "role": "Human", "content": f"m{i}"} for i in range(9))
    )
    response = import_(folding_client, tenant, "s1", body)
    assert response.status_code == 201 and response.json["fold_due"] is True
    assert wait_until(lambda: folded(folding_client, tenant, "s1"))
    assert len(memory(folding_client, tenant, "s1")["messages"]) <= 4


def test_an_export_is_streamed(client, tenant):
    post(client, tenant, "s1", "a", "b")
    response = client.get("/sessions/s1/export", headers=tenant.headers)
    assert response.is_streamed and response.status_code == 200


def test_an_export_holds_constant_memory_whatever_the_session_holds(client, tenant):
    """A session ten times larger exports within the same peak: a page at a time, never the
    whole (bench/export_memory.py measures 100,000 messages)."""
    sizes = (2_000, 20_000)
    for count in sizes:
        body = ndjson(
            {"type": "session", "summarized_through": count // 2},
            *(
                {"type": "message", "role": "Human", "content": f"message number {i} " * 6}
                for i in range(count)
            ),
        )
        assert import_(client, tenant, f"s{count}", body).status_code == 201
    # The background index passes and folds allocate too: let them finish first.
    for count in sizes:
        assert wait_until(
            lambda c=count: indexed(client, tenant, f"s{c}") and folded(client, tenant, f"s{c}"), 60
        )
    peaks = {}
    for count in sizes:
        response = client.get(f"/sessions/s{count}/export", headers=tenant.headers)
        tracemalloc.start()
        exported = sum(len(chunk) for chunk in response.response)
        peaks[count] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        response.close()
        assert exported > count * 100
    assert peaks[20_000] < 1.5 * peaks[2_000] + 128 * 1024, peaks
    assert peaks[20_000] < 1024 * 1024, peaks  # the export itself is over 2.5 MB


# --- errors -------------------------------------------------------------------------------------


def test_importing_over_an_existing_session_is_a_409_that_changes_nothing(client, tenant):
    post(client, tenant, "s1", "mine")
    before = export(client, tenant, "s1")
    response = import_(client, tenant, "s1", ndjson({"type": "session"}))
    assert response.status_code == 409
    assert response.json["error"]["code"] == "session_exists"
    assert export(client, tenant, "s1") == before


@pytest.mark.parametrize(
    ("bad", "status", "code", "message"),
    [
        (b"{not json\n", 400, "invalid_json", "line 1502: not valid JSON"),
        (b'{"type":"message","role":"Human"}\n', 422, "invalid_import_line", "line 1502: content: required"),
        (
            b'{"type":"message","id":3,"role":"H","content":"x"}\n',
            422,
            "invalid_import_line",
            "line 1502: id 3",
        ),
        (b'{"type":"session"}\n', 422, "invalid_import_line", "line 1502: a second session line"),
        (
            b'{"type":"message","role":"H","content":"x","created_at":"soon"}\n',
            422,
            "invalid_import_line",
            "line 1502: created_at",
        ),
    ],
)
def test_a_bad_line_keeps_nothing_and_is_named(client, tenant, redis_client, bad, status, code, message):
    good = ndjson(
        {"type": "session", "summarized_through": 700},
        *({"type": "message", "role": "Human", "content": f"m{i}"} for i in range(1500)),
    )
    response = import_(client, tenant, "s1", good + bad)
    assert response.status_code == status, response.json
    assert response.json["error"]["code"] == code
    assert response.json["error"]["message"].startswith(message), response.json
    assert session_keys(redis_client) == []  # not the session, not a staged key
    assert client.get("/sessions", headers=tenant.headers).json == []


def test_a_message_over_the_tenants_limit_is_a_413_naming_its_line(client, make_tenant):
    tenant = make_tenant("acme", max_message_bytes=100)
    body = ndjson({"type": "session"}, {"type": "message", "role": "Human", "content": "x" * 101})
    response = import_(client, tenant, "s1", body)
    assert response.status_code == 413
    assert response.json["error"] == {
        "code": "message_too_large",
        "message": "line 2: content exceeds 100 bytes",
    }


def test_an_empty_body_and_a_wrong_content_type_are_refused(client, tenant):
    assert import_(client, tenant, "s1", b"").status_code == 422
    response = client.post(
        "/sessions/s1/import",
        data=ndjson({"type": "session"}),
        headers=tenant.headers | {"Content-Type": "text/csv"},
    )
    assert response.status_code == 415 and response.json["error"]["code"] == "unsupported_media_type"


def test_an_import_may_exceed_the_post_body_limit(client, tenant, app):
    body = ndjson(
        {"type": "session"},
        *({"type": "message", "role": "Human", "content": "y" * 1000} for _ in range(2100)),
    )
    assert len(body) > app.config["MAX_CONTENT_LENGTH"]
    assert (
        client.post(
            "/sessions/big/memory", data=body, headers=tenant.headers | {"Content-Type": "application/json"}
        ).status_code
        == 413
    )
    response = import_(client, tenant, "s1", body)
    assert response.status_code == 201 and response.json["messages"] == 2100


def test_an_import_over_its_own_limit_is_a_413(client, tenant, app, redis_client):
    app.config["IMPORT_MAX_BYTES"] = 4096
    body = ndjson(
        {"type": "session"}, *({"type": "message", "role": "Human", "content": "z" * 100} for _ in range(100))
    )
    response = import_(client, tenant, "s1", body)
    assert response.status_code == 413 and response.json["error"]["code"] == "payload_too_large"
    assert session_keys(redis_client) == []


def test_exporting_an_unknown_session_is_a_404(client, tenant):
    response = client.get("/sessions/nobody/export", headers=tenant.headers)
    assert response.status_code == 404 and response.json["error"]["code"] == "session_not_found"


def test_a_tenant_never_exports_or_overwrites_another_tenants_session(client, tenant, other_tenant):
    post(client, other_tenant, "shared-name", "secret")
    assert client.get("/sessions/shared-name/export", headers=tenant.headers).status_code == 404
    assert import_(client, tenant, "shared-name", ndjson({"type": "session"})).status_code == 201
    assert lines(export(client, other_tenant, "shared-name"))[1]["content"] == "secret"


def test_the_motorhead_prefixes_serve_export_and_import(client, tenant):
    post(client, tenant, "s1", "a")
    body = client.get("/motorhead/sessions/s1/export", headers=tenant.headers).data
    assert lines(body)[1]["content"] == "a"
    response = import_(client, tenant, "s2", body, prefix="/v1/motorhead")
    assert response.status_code == 201 and response.json["data"]["messages"] == 1
    assert client.get("/v1/motorhead/sessions/s2/export", headers=tenant.headers).data == body.replace(
        b'"s1"', b'"s2"'
    )


# --- the tenant export (admin) ------------------------------------------------------------------


def test_the_admin_exports_every_session_of_a_tenant(client, tenant, other_tenant):
    for n in range(5):
        post(client, tenant, f"s{n}", f"{n}-a", f"{n}-b")
    post(client, other_tenant, "theirs", "no")
    response = client.get("/admin/tenants/acme/export", headers=ADMIN)
    assert response.status_code == 200 and response.mimetype == "application/x-ndjson"
    got: dict[str, list[str]] = {}
    for line in lines(response.data):
        if line["type"] == "session":
            current = got.setdefault(line["session_id"], [])
        else:
            current.append(line["content"])
    assert got == {f"s{n}": [f"{n}-a", f"{n}-b"] for n in range(5)}
    assert client.get("/admin/tenants/nobody/export", headers=ADMIN).status_code == 404
    assert client.get("/admin/tenants/acme/export", headers=tenant.headers).status_code == 401


# --- the CLI ------------------------------------------------------------------------------------


def run(app, *args: str):
    return app.test_cli_runner().invoke(args=list(args))


def test_the_cli_exports_a_tenant_and_imports_it_into_another(app, client, tenant, make_tenant, tmp_path):
    for n in range(3):
        post(client, tenant, f"s{n}", f"{n}-a", f"{n}-b")
    result = run(app, "export", "--tenant", "acme")
    assert result.exit_code == 0, result.output
    path = tmp_path / "acme.ndjson"
    path.write_bytes(result.stdout_bytes)
    assert sum(1 for line in lines(result.stdout_bytes) if line["type"] == "session") == 3

    copy = make_tenant("copy")
    result = run(app, "import", "--tenant", "copy", str(path))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["imported"]["sessions"] == 3 and report["imported"]["messages"] == 6
    for n in range(3):
        assert export(client, copy, f"s{n}") == export(client, tenant, f"s{n}")
    again = json.loads(run(app, "import", "--tenant", "copy", str(path)).stdout)
    assert again["imported"]["sessions"] == 0 and again["skipped"]["count"] == 3


def test_the_cli_exports_and_imports_one_session(app, client, tenant, tmp_path):
    post(client, tenant, "s1", "a")
    result = run(app, "export", "--tenant", "acme", "--session", "s1")
    assert result.exit_code == 0 and result.stdout_bytes == export(client, tenant, "s1")
    path = tmp_path / "s1.ndjson"
    path.write_bytes(result.stdout_bytes)
    assert run(app, "import", "--tenant", "acme", "--session", "s1-copy", str(path)).exit_code == 0
    assert lines(export(client, tenant, "s1-copy"))[1]["content"] == "a"


def test_a_bad_file_imports_nothing_and_says_which_line(app, client, tenant, tmp_path, redis_client):
    path = tmp_path / "bad.ndjson"
    path.write_bytes(
        ndjson({"type": "session", "session_id": "a"}, {"type": "message", "role": "H", "content": "x"})
        + b'{"type":"session","session_id":"b"}\n{"type":"message","role":"H"}\n'
    )
    result = run(app, "import", "--tenant", "acme", str(path))
    assert result.exit_code != 0
    assert "invalid_import_line: line 4: content: required" in result.output
    assert "Traceback" not in result.output
    assert session_keys(redis_client) == []


def test_cli_transfer_errors_are_one_line(app, tenant, tmp_path):
    for args in (
        ("export", "--tenant", "nobody"),
        ("export", "--tenant", "acme", "--session", "nobody"),
    ):
        result = run(app, *args)
        assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1, result.output
    assert "tenant_not_found" in run(app, "export", "--tenant", "nobody").output
    assert "session_not_found" in run(app, "export", "--tenant", "acme", "--session", "nobody").output
