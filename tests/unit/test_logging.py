"""The log format: one JSON object per line, carrying the request context."""

import json
import logging

from config.logging import ContextFilter, RecollectJsonFormatter, log_context


def test_records_are_json_with_the_request_context():
    record = logging.LogRecord("recollect", logging.INFO, __file__, 1, "request %s", ("done",), None)
    token = log_context.set({"request_id": "r-1", "tenant_id": "acme", "key_id": "k1"})
    try:
        assert ContextFilter().filter(record)
    finally:
        log_context.reset(token)
    line = RecollectJsonFormatter().format(record)
    parsed = json.loads(line)
    assert "\n" not in line
    assert parsed["message"] == "request done" and parsed["level"] == "INFO"
    assert parsed["logger"] == "recollect"
    assert (parsed["request_id"], parsed["tenant_id"], parsed["key_id"]) == ("r-1", "acme", "k1")
