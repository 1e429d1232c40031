"""The NDJSON format: lines read strictly and numbered, times normalized, messages written
as the API shows them without their token count."""

from __future__ import annotations

import io

import orjson
import pytest

from app.domain.errors import InvalidField, InvalidRequest, TooLarge
from app.domain.transfer.format import (
    MalformedLine,
    MessageRecord,
    SessionHeader,
    SessionRecord,
    message_line,
    parse_timestamp,
    read_lines,
    read_records,
    session_line,
)


def lines(*objects: object) -> list[bytes]:
    return [orjson.dumps(o) + b"\n" for o in objects]


def records(*objects: object) -> list:
    return list(read_records(lines(*objects)))


SESSION = {"type": "session", "session_id": "s1"}


def test_a_session_line_with_every_field():
    (record,) = records(
        {
            "type": "session",
            "session_id": "s1",
            "summary": "so far",
            "tokens": 12,
            "created_at": "2027-01-15T08:00:00.000Z",
            "updated_at": "2027-01-15T08:00:01.500Z",
            "last_id": 9,
            "summarized_through": 4,
        }
    )
    assert record == SessionRecord(1, "s1", "so far", 12, 1_800_000_000_000, 1_800_000_001_500, 9, 4)


def test_a_bare_session_line_has_defaults():
    assert records({"type": "session"}) == [SessionRecord(1, None, None, 0, None, None, 0, 0)]


def test_message_ids_follow_on_when_left_out_and_must_increase():
    got = records(
        SESSION,
        {"type": "message", "role": "Human", "content": "a"},
        {"type": "message", "id": 5, "role": "AI", "content": "b"},
        {"type": "message", "role": "Human", "content": "c"},
    )
    assert [r.id for r in got[1:]] == [1, 5, 6]
    with pytest.raises(InvalidField, match=r"line 3: id 5 is not above the previous message's \(5\)"):
        records(
            SESSION,
            {"type": "message", "id": 5, "role": "Human", "content": "a"},
            {"type": "message", "id": 5, "role": "AI", "content": "b"},
        )


def test_ids_start_again_with_each_session():
    got = records(
        SESSION,
        {"type": "message", "id": 7, "role": "Human", "content": "a"},
        {"type": "session", "session_id": "s2"},
        {"type": "message", "id": 1, "role": "Human", "content": "b"},
    )
    assert [r.id for r in got if isinstance(r, MessageRecord)] == [7, 1]


def test_a_message_keeps_every_field():
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    (_, record) = records(
        SESSION,
        {
            "type": "message",
            "id": 3,
            "role": "assistant",
            "content": None,
            "created_at": "2027-01-15T08:00:00Z",
            "metadata": {"k": [1, 2]},
            "name": "bot",
            "tool_calls": [call],
            "token_count": 999,  # derived: ignored
        },
    )
    assert record == MessageRecord(
        2, 3, "assistant", "", 1_800_000_000_000, {"k": [1, 2]}, "bot", None, [call]
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            {"type": "message", "role": "Human", "content": "x"},
            "line 1: the first line must be a session line",
        ),
        ({"type": "nope"}, "line 1: expected an object whose type is 'session' or 'message'"),
        (["a list"], "line 1: expected an object"),
        ({"type": "session", "tokens": -1}, "line 1: tokens: Input should be greater than or equal to 0"),
        ({"type": "session", "last_id": "7"}, "line 1: last_id: Input should be a valid integer"),
        ({"type": "session", "created_at": "yesterday"}, "line 1: created_at: not an ISO 8601 time"),
        ({"type": "session", "updated_at": "1969-12-31T23:59:59Z"}, "line 1: updated_at: not an ISO 8601"),
    ],
)
def test_a_bad_session_line_names_its_line_and_the_reason(line, message):
    with pytest.raises(InvalidField) as caught:
        records(line)
    assert caught.value.message.startswith(message)
    assert caught.value.code == "invalid_import_line" and caught.value.line == 1


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ({"type": "message", "content": "x"}, "role: Field required"),
        ({"type": "message", "role": "", "content": "x"}, "role: String should have at least 1 character"),
        ({"type": "message", "role": "Human"}, "content: required (it may be null only with tool_calls)"),
        ({"type": "message", "role": "Human", "content": 5}, "content: Input should be a valid string"),
        (
            {"type": "message", "id": 0, "role": "H", "content": "x"},
            "id: Input should be greater than or equal",
        ),
        ({"type": "message", "id": True, "role": "H", "content": "x"}, "id: Input should be a valid integer"),
        (
            {"type": "message", "id": 2**32, "role": "H", "content": "x"},
            "id: Input should be less than or equal",
        ),
        (
            {"type": "message", "role": "H", "content": "x", "metadata": []},
            "metadata: Input should be a valid",
        ),
        (
            {"type": "message", "role": "H", "content": "x", "created_at": "soon"},
            "created_at: not an ISO 8601",
        ),
        (
            {"type": "message", "role": "H", "content": "x", "tool_calls": [{"id": "c"}]},
            "tool_calls.0.function",
        ),
    ],
)
def test_a_bad_message_line_names_its_line_and_the_reason(line, reason):
    with pytest.raises(InvalidField) as caught:
        records(SESSION, line)
    assert caught.value.message.startswith(f"line 2: {reason}"), caught.value.message


def test_metadata_too_deep_to_store_is_refused():
    deep = b'{"type":"message","role":"H","content":"x","metadata":' + b'{"d":' * 260 + b"{}" + b"}" * 261
    with pytest.raises(InvalidField, match="line 2: metadata: .*254 levels"):
        list(read_records([*lines(SESSION), deep + b"\n"]))


def test_a_line_that_is_not_json_is_a_400_naming_it():
    with pytest.raises(MalformedLine) as caught:
        list(read_records([orjson.dumps(SESSION) + b"\n", b"{oops\n"]))
    assert isinstance(caught.value, InvalidRequest)
    assert caught.value.message == "line 2: not valid JSON" and caught.value.code == "invalid_json"


def test_blank_lines_are_skipped_but_counted():
    body = [b"\n", orjson.dumps(SESSION) + b"\n", b"  \r\n", b"[]\n"]
    assert list(read_records(body[:3])) == [SessionRecord(2, "s1", None, 0, None, None, 0, 0)]
    with pytest.raises(InvalidField, match="line 4: "):
        list(read_records(body))


def test_read_lines_bounds_each_line():
    stream = io.BytesIO(b"short\n" + b"x" * 20 + b"\nlast")
    reader = read_lines(stream, max_line_bytes=10)
    assert next(reader) == b"short\n"
    with pytest.raises(TooLarge, match="line 2: longer than 10 bytes"):
        next(reader)
    assert list(read_lines(io.BytesIO(b"a\nb"), max_line_bytes=10)) == [b"a\n", b"b"]
    assert list(read_lines(io.BytesIO(b"0123456789\n"), max_line_bytes=10)) == [b"0123456789\n"]


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2027-01-15T08:00:00.000Z", 1_800_000_000_000),
        ("2027-01-15T08:00:00.123456Z", 1_800_000_000_123),
        ("2027-01-15T09:00:00+01:00", 1_800_000_000_000),
        ("2027-01-15T08:00:00", 1_800_000_000_000),  # no zone: UTC
        ("1970-01-01T00:00:00Z", 0),
    ],
)
def test_times_are_read_as_utc_milliseconds(text, ms):
    assert parse_timestamp(text) == ms


def test_a_session_line_is_written_with_every_field():
    header = SessionHeader("s/1", None, 3, 1_800_000_000_000, None, 7, 2)
    assert orjson.loads(session_line(header)) == {
        "type": "session",
        "session_id": "s/1",
        "summary": None,
        "tokens": 3,
        "created_at": "2027-01-15T08:00:00.000Z",
        "updated_at": None,
        "last_id": 7,
        "summarized_through": 2,
    }
    assert session_line(header).endswith(b"}\n") and session_line(header).count(b"\n") == 1


def test_a_message_line_is_the_api_json_without_its_token_count():
    stored = (
        b'{"id":4,"r":"Human","c":"hi \\"you\\"\\n","t":"2027-01-15T08:00:00.000Z","n":9,"metadata":{"a":1}}'
    )
    assert message_line(stored) == (
        b'{"type":"message","id":4,"role":"Human","content":"hi \\"you\\"\\n",'
        b'"created_at":"2027-01-15T08:00:00.000Z","metadata":{"a":1}}\n'
    )


def test_what_is_written_reads_back():
    stored = b'{"id":4,"r":"AI","c":"x","t":"2027-01-15T08:00:00.000Z","n":9,"name":"n","tool_call_id":"c1"}'
    header = SessionHeader("s1", "sum", 3, 1_800_000_000_000, 1_800_000_000_001, 4, 0)
    session, message = read_records([session_line(header), message_line(stored)])
    assert session == SessionRecord(1, "s1", "sum", 3, 1_800_000_000_000, 1_800_000_000_001, 4, 0)
    assert message == MessageRecord(2, 4, "AI", "x", 1_800_000_000_000, None, "n", "c1", None)
