"""/openapi.json is generated from the request models, covers every route, and describes
what the server really answers; /docs works offline."""

from __future__ import annotations

import json
import re

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi

from app.openapi import openapi_path, undocumented_rules
from tests.conftest import ADMIN


@pytest.fixture
def spec(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json


def test_the_document_is_valid_openapi_3_1(spec):
    assert spec["openapi"] == "3.1.0"
    validate_openapi(spec)


def test_every_served_route_is_documented(app, spec):
    assert undocumented_rules(app) == []
    rules = [rule for rule in app.url_map.iter_rules() if not rule.endpoint.startswith("console.")]
    served = {openapi_path(rule.rule) for rule in rules}  # the console's pages are HTML
    served -= {"/docs", "/docs/assets/{name}", "/static/{filename}"}
    assert served == set(spec["paths"])
    for prefix in ("/motorhead", "/v1/motorhead"):
        assert f"{prefix}/sessions/{{session_id}}/memory" in spec["paths"]


def test_a_route_without_a_declaration_is_reported(app):
    @app.get("/not-documented")
    def secret_route():
        return "x"

    assert undocumented_rules(app) == ["/not-documented"]


class Recorder:
    """Validates each live response against the document's schema for its route."""

    def __init__(self, app, spec):
        self.spec = spec
        self.adapter = app.url_map.bind("localhost")
        self.checked: set[tuple[str, str, str]] = set()

    def check(self, method: str, path: str, response) -> None:
        rule, _ = self.adapter.match(path.split("?")[0], method, return_rule=True)
        template = openapi_path(rule.rule)
        operation = self.spec["paths"][template][method.lower()]
        status = str(response.status_code)
        assert status in operation["responses"], f"{method} {template} answered undocumented {status}"
        content = operation["responses"][status]["content"]
        if response.mimetype == "application/x-ndjson":  # the schema is one line's
            documents = [json.loads(line) for line in response.data.splitlines()]
            schema = content["application/x-ndjson"]["schema"]
        else:
            documents = [response.json]
            schema = content["application/json"]["schema"]
        validator = Draft202012Validator({**schema, "components": self.spec["components"]})
        for document in documents:
            errors = sorted(validator.iter_errors(document), key=str)
            assert not errors, f"{method} {template} {status}: {errors[0].message}"
        self.checked.add((method, template, status))


def test_live_responses_validate_against_the_document(app, client, spec, tenant):
    recorder = Recorder(app, spec)
    h = tenant.headers

    def call(method: str, path: str, **kwargs):
        response = client.open(path, method=method, **kwargs)
        recorder.check(method, path, response)
        return response

    body = {
        "messages": [
            {"role": "Human", "content": "hi", "metadata": {"k": 1}},
            {"role": "AI", "content": "yo"},
        ]
    }
    for prefix in ("", "/motorhead", "/v1/motorhead"):
        call("POST", f"{prefix}/sessions/s1/memory", json=body, headers=h)
        call("GET", f"{prefix}/sessions/s1/memory", headers=h)
        call("GET", f"{prefix}/sessions/s1/messages/1", headers=h)
        call("GET", f"{prefix}/sessions/s1/messages?limit=1", headers=h)
        call("GET", f"{prefix}/sessions?page=1&size=5", headers=h)
        call("GET", f"{prefix}/keys/current", headers=h)
        call("GET", f"{prefix}/usage", headers=h)
        call("POST", f"{prefix}/sessions/s1/retrieval", json={"text": "x"}, headers=h)
        call("POST", f"{prefix}/search", json={"text": "hi", "k": 3}, headers=h)
        call("GET", f"{prefix}/sessions/s1/context?model=gpt-4o&max_tokens=100", headers=h)
        exported = call("GET", f"{prefix}/sessions/s1/export", headers=h).data
        ndjson = {"Content-Type": "application/x-ndjson"}
        call("POST", f"{prefix}/sessions/s1-copy/import", data=exported, headers=h | ndjson)
        call("DELETE", f"{prefix}/sessions/s1/messages/2", headers=h)
        call("DELETE", f"{prefix}/sessions/s1/memory", headers=h)
    call("POST", "/sessions/s1/memory", json=body, headers=h)
    call("GET", "/sessions/s1/messages/99", headers=h)  # 404
    call("GET", "/sessions/s1/memory")  # 401
    call("GET", "/sessions?size=500", headers=h)  # 400
    call("GET", "/sessions/s1/context?model=gpt-4o&max_tokens=0", headers=h)  # 400
    call("POST", "/sessions/s1/memory", data="x", content_type="text/plain", headers=h)  # 415
    call("POST", "/sessions/s1/memory", json={"messages": 1}, headers=h)  # 422
    call("POST", "/sessions/s1/memory", data="{", content_type="application/json", headers=h)  # 400
    for path in ("/", "/healthz", "/readyz", "/openapi.json"):
        call("GET", path)
    created = call("POST", "/admin/tenants", json={"id": "globex", "window_size": 8}, headers=ADMIN)
    call("POST", "/admin/tenants", json={"id": "globex"}, headers=ADMIN)  # 409
    call("GET", "/admin/tenants", headers=ADMIN)
    call("GET", "/admin/tenants/globex", headers=ADMIN)
    call("PATCH", "/admin/tenants/globex", json={"window_size": None}, headers=ADMIN)
    key = call("POST", "/admin/tenants/globex/keys", json={"label": "x"}, headers=ADMIN).json
    call("GET", "/admin/tenants/globex/keys", headers=ADMIN)
    call("GET", "/admin/tenants/globex/usage", headers=ADMIN)
    call("GET", "/admin/tenants/acme/export", headers=ADMIN)
    call("DELETE", f"/admin/tenants/globex/keys/{key['key_id']}", headers=ADMIN)
    call("GET", "/admin/tenants/nope", headers=ADMIN)  # 404
    call("GET", "/admin/tenants")  # 401
    call("DELETE", "/admin/tenants/globex", headers=ADMIN)
    assert created.status_code == 201
    documented_operations = {
        (method.upper(), path) for path, item in spec["paths"].items() for method in item
    }
    exercised = {(m, p) for m, p, _ in recorder.checked}
    assert documented_operations - exercised == set(), "every documented operation is exercised"


def test_docs_page_works_offline(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "no asset may come from elsewhere"
    for asset in re.findall(r"(?:src|href)=\"(/docs/assets/[^\"]+)\"", html):
        assert client.get(asset).status_code == 200, asset
    assert "/openapi.json" in html
