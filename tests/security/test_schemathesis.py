"""schemathesis against the app's own ``/openapi.json`` (issue 7 §3): requests generated
from the document — valid ones and, for a robustness pass, invalid ones — sent to the live
WSGI app (on the real Redis of ``tests/conftest.py``), with a tenant key on tenant routes
and the operator token on ``/admin``. Zero server errors and zero schema violations: every
status, content type, header and body the server answers is one the document declares.

schemathesis's pytest integration (``schemathesis.pytest.from_fixture``) does not run on
pytest 9.2 (it sets ``Item._nodeid``), so each operation's strategy is driven here directly
with hypothesis; failures are collected over every operation and reported together.
"""

from __future__ import annotations

import itertools
import json

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from tests.conftest import ADMIN

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# About 100 generated requests over the ~40 documented operations.
EXAMPLES = {GenerationMode.POSITIVE: 2, GenerationMode.NEGATIVE: 1}


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx, value) -> bytes:
    """An import's body: the document's schema is one line's, so a generated value is one line."""
    return json.dumps(value).encode() + b"\n"


def one_address_per_request(wsgi_app):
    """Each generated request comes from its own client address, so requests sent without
    valid credentials never add up to the per-address brute-force block (which
    ``test_auth_security`` covers) and turn the rest of the run into 429s."""
    counter = itertools.count(1)

    def middleware(environ, start_response):
        n = next(counter)
        environ["REMOTE_ADDR"] = f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
        return wsgi_app(environ, start_response)

    return middleware


def exercise(operation, mode: GenerationMode, count: int, headers: dict[str, str]) -> int:
    """Send ``count`` generated requests of one kind for one operation; how many were sent."""
    sent = 0

    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        nonlocal sent
        sent += 1
        case.call_and_validate(headers=headers, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE  # an operation with no input to make invalid
    return sent


def test_every_documented_operation_answers_as_documented(make_app, tenant):
    app = make_app()
    app.wsgi_app = one_address_per_request(app.wsgi_app)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30, "the document lost its operations"
    failures: list[str] = []
    sent = 0
    for operation in operations:
        headers = ADMIN if operation.path.startswith("/admin") else tenant.headers
        for mode, count in EXAMPLES.items():
            try:
                sent += exercise(operation, mode, count, headers)
            except (FailureGroup, Exception) as exc:  # every operation runs; all are reported
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    assert sent >= len(operations)
    print(f"schemathesis: {sent} generated requests over {len(operations)} operations")
    assert failures == [], "\n\n".join(failures)
