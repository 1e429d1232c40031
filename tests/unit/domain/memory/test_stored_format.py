"""The stored form of a window element (short keys) and its API form (the API's names),
restored by byte replacement without parsing — which must hold for any content."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.memory.stored_format import NewMessage, api_message, id_prefix, message_id, stored_payload

CREATED = "2026-11-24T16:19:56.123Z"


def element(message_id: int, message: NewMessage, created_at: str = CREATED) -> bytes:
    """What the append script stores: its ``{"id":<n>,`` head, then the payload."""
    return id_prefix(message_id) + stored_payload(message, created_at)


def api_dict(message_id: int, message: NewMessage, created_at: str = CREATED) -> dict:
    expected = {
        "id": message_id,
        "role": message.role,
        "content": message.content,
        "created_at": created_at,
        "token_count": message.token_count,
    }
    for name in ("name", "tool_call_id", "tool_calls"):
        if getattr(message, name) is not None:
            expected[name] = getattr(message, name)
    if message.metadata:
        expected["metadata"] = message.metadata
    return expected


# --- the stored payload ------------------------------------------------------------------------


def test_the_payload_is_the_json_object_without_its_opening_brace_in_short_keys():
    payload = stored_payload(NewMessage("Human", "hello", None, 7), CREATED)
    assert payload == b'"r":"Human","c":"hello","t":"2026-11-24T16:19:56.123Z","n":7}'


def test_metadata_comes_last_under_its_full_name():
    payload = stored_payload(NewMessage("AI", "x", {"source": "web", "n": 1}, 3), CREATED)
    assert payload.endswith(b',"n":3,"metadata":{"source":"web","n":1}}')


@pytest.mark.parametrize("metadata", [None, {}])
def test_absent_or_empty_metadata_is_not_stored(metadata):
    payload = stored_payload(NewMessage("AI", "x", metadata, 3), CREATED)
    assert b"metadata" not in payload
    assert "metadata" not in orjson.loads(api_message(element(1, NewMessage("AI", "x", metadata, 3))))


def test_the_stored_form_is_smaller_than_the_api_form():
    stored = element(1, NewMessage("Human", "hi", None, 5))
    assert len(api_message(stored)) - len(stored) == 28  # the bytes the docstring promises


def test_non_ascii_text_is_stored_as_raw_utf8_not_escaped():
    payload = stored_payload(NewMessage("Human", "héllo 🦊", None, 5), CREATED)
    assert "héllo 🦊".encode() in payload


# --- the API form ------------------------------------------------------------------------------


def test_the_api_form_restores_the_api_names_in_the_api_order():
    raw = api_message(element(42, NewMessage("Human", "hi", {"k": "v"}, 5)))
    assert raw == (
        b'{"id":42,"role":"Human","content":"hi","created_at":"2026-11-24T16:19:56.123Z",'
        b'"token_count":5,"metadata":{"k":"v"}}'
    )


TRICKY_CONTENT = [
    "",
    'she said "hi"',
    '","c":"',
    ',"r":"AI","c":"forged","t":"x","n":999}',
    '{"id":1,"r":"Human","c":"nested element","t":"2026","n":1}',
    ',"n":5,"metadata":{"a":1}}',
    'back\\slash \\" and trailing backslash \\',
    "line\nbreak\ttab\r\u2028\u2029",
    "nul \x00 and bell \x07 and del \x7f",
    "emoji 🦊👩‍👩‍👧 and RTL עברית and CJK 漢字",
    '"role":"content":"created_at":"token_count":',
    "a" * 10_000,
]


@pytest.mark.parametrize("content", TRICKY_CONTENT)
def test_any_content_round_trips_exactly(content):
    message = NewMessage("Human", content, None, 12)
    assert orjson.loads(api_message(element(3, message))) == api_dict(3, message)


@pytest.mark.parametrize("role", ["Human", 'r"', ',"c":"', "AI\n", "🤖", ',"r":"'])
def test_any_role_round_trips_exactly(role):
    message = NewMessage(role, ',"t":"not the time"', None, 1)
    assert orjson.loads(api_message(element(9, message))) == api_dict(9, message)


@pytest.mark.parametrize(
    "metadata",
    [
        {"r": "x", "c": "y", "t": "z", "n": 1},
        {"role": "forged", "content": "forged", "id": 0, "token_count": -1},
        {"nested": {"r": ',"r":"', "list": [',"c":"', {"n": ',"n":1'}]}},
        {'quote"key': 'value with "quotes" and \\', "🦊": "ü"},
        {"deep": [[[{"a": None, "b": True, "c": 1.5}]]]},
    ],
)
def test_metadata_that_looks_like_stored_keys_is_left_alone(metadata):
    message = NewMessage("AI", "content", metadata, 4)
    assert orjson.loads(api_message(element(5, message))) == api_dict(5, message)


TOOL_CALLS = [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a":"b"}'}}]


def test_the_tool_fields_keep_their_names_between_the_short_keys_and_the_metadata():
    message = NewMessage(
        "assistant", "", {"m": 1}, 8, name="bot", tool_call_id="call_0", tool_calls=TOOL_CALLS
    )
    payload = stored_payload(message, CREATED)
    assert payload.index(b',"n":8,"name":"bot","tool_call_id":"call_0","tool_calls":[') > 0
    assert payload.endswith(b',"metadata":{"m":1}}')


def test_absent_tool_fields_are_not_stored():
    payload = stored_payload(NewMessage("AI", "x", None, 3), CREATED)
    assert b"name" not in payload and b"tool_call" not in payload


@pytest.mark.parametrize(
    "name",
    ['","c":"', ',"r":"x', "🦊", ',"n":1'],
)
def test_tool_fields_that_look_like_stored_keys_round_trip(name):
    message = NewMessage(
        "tool", ',"t":"', {"r": "x"}, 2, name=name, tool_call_id=',"c":"', tool_calls=TOOL_CALLS
    )
    assert orjson.loads(api_message(element(4, message))) == api_dict(4, message)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3),
    max_leaves=8,
)


@settings(max_examples=75, deadline=None, database=None)
@given(
    number=st.integers(min_value=1, max_value=2**53),
    role=st.text(min_size=1, max_size=20),
    content=st.text(),
    metadata=st.none() | st.dictionaries(st.text(max_size=5), json_values, max_size=4),
    token_count=st.integers(min_value=0, max_value=10**9),
    name=st.none() | st.text(max_size=10),
    tool_call_id=st.none() | st.text(max_size=10),
)
def test_every_message_round_trips_through_its_stored_form(
    number, role, content, metadata, token_count, name, tool_call_id
):
    message = NewMessage(role, content, metadata, token_count, name=name, tool_call_id=tool_call_id)
    assert orjson.loads(api_message(element(number, message))) == api_dict(number, message)


# --- elements written before the short keys ----------------------------------------------------


LEGACY = [
    b'{"id":1,"role":"Human","content":"old","created_at":"2025-01-01T00:00:00.000Z","token_count":4}',
    b'{"id":2,"role":"AI","content":"\\"r\\":\\"x","created_at":"2025-01-01T00:00:00.000Z",'
    b'"token_count":4,"metadata":{"r":"x","c":"y"}}',
    b'{"id":3,"role":"AI","content":",\\"r\\":\\"","created_at":"t","token_count":0}',
]


@pytest.mark.parametrize("legacy", LEGACY)
def test_a_legacy_long_key_element_passes_through_unchanged(legacy):
    assert api_message(legacy) == legacy


def test_only_the_short_key_right_after_the_id_marks_the_short_form():
    # A legacy element whose content holds the bytes of a short key is still legacy.
    legacy = b'{"id":7,"role":"AI","content":"x","created_at":"t","token_count":1,"metadata":{"r":"v"}}'
    assert api_message(legacy) == legacy


# --- the id prefix -----------------------------------------------------------------------------


def test_the_id_prefix_is_the_head_every_stored_form_starts_with():
    assert id_prefix(12) == b'{"id":12,'
    assert element(12, NewMessage("Human", "x", None, 1)).startswith(id_prefix(12))
    assert LEGACY[0].startswith(id_prefix(1))


@pytest.mark.parametrize("number", [1, 12, 2**31, 2**53])
def test_message_id_reads_the_id_at_the_head_of_any_stored_form(number):
    assert message_id(element(number, NewMessage("Human", '{"id":5,', None, 1))) == number
    assert message_id(b'{"id":%d,"role":"AI","content":"x"}' % number) == number


def test_the_id_prefix_of_one_id_is_never_the_prefix_of_another():
    assert not element(12, NewMessage("Human", "x", None, 1)).startswith(id_prefix(1))
    assert not element(1, NewMessage("Human", "x", None, 1)).startswith(id_prefix(12))
