"""The session-id → key mapping is injective and keeps each session in one hash tag."""

import pytest

from app.domain.errors import InvalidRequest
from app.domain.keyspace import Keyspace, decode_session_id, encode_session_id
from app.domain.memory.service import validate_session_id

TRICKY = [
    "a:b",
    "a%3Ab",
    "a%253Ab",
    "{x}",
    "}",
    "{",
    "a*b?",
    "a b",
    "a+b",
    "café",
    "☕" * 10,
    ".",
    "..",
    "-",
    "~",
    "a/b",
    "%",
    "%%",
    "x" * 256,
]


def hash_tag(key: str) -> str:
    start = key.index("{")
    return key[start + 1 : key.index("}", start)]


def test_encoding_is_injective_and_reversible():
    encoded = [encode_session_id(s) for s in TRICKY]
    assert len(set(encoded)) == len(TRICKY)
    assert [decode_session_id(e) for e in encoded] == TRICKY
    for e in encoded:
        assert not set(e) & set("{}:*?[] /")


def test_all_keys_of_a_session_share_one_hash_tag():
    keyspace = Keyspace("rc")
    for session in TRICKY:
        keys = keyspace.session("acme", session)
        tags = {hash_tag(k) for k in keys.all}
        assert tags == {f"acme:{encode_session_id(session)}"}
        for key in keys.all:
            assert key.count("{") == 1 and key.count("}") == 1


def test_no_session_id_reaches_another_tenant_or_session():
    keyspace = Keyspace("rc")
    seen = {}
    for tenant in ("acme", "acme-2", "a"):
        for session in TRICKY:
            for key in keyspace.session(tenant, session).all:
                assert key not in seen, (key, seen.get(key))
                seen[key] = (tenant, session)
    # A session id can never produce a tenant-wide key either.
    assert keyspace.sessions_index("acme") not in seen


def test_due_members_round_trip():
    for session in TRICKY:
        member = Keyspace.due_member("acme", session)
        assert Keyspace.parse_due_member(member) == ("acme", session)


def test_tenant_patterns_do_not_match_a_tenant_with_a_longer_id():
    import fnmatch

    keyspace = Keyspace("rc")
    patterns = keyspace.tenant_data_patterns("acme")
    other = keyspace.session("acme-2", "s").window
    mine = keyspace.session("acme", "s").window
    assert any(fnmatch.fnmatchcase(mine, p) for p in patterns)
    assert not any(fnmatch.fnmatchcase(other, p) for p in patterns)
    assert any(fnmatch.fnmatchcase(keyspace.usage("acme"), p) for p in patterns)


@pytest.mark.parametrize("session", ["", "x" * 257, "é" * 129, "a\nb", "\x00", "\x7f", "\u0085"])
def test_invalid_session_ids(session):
    with pytest.raises(InvalidRequest):
        validate_session_id(session)


def test_valid_session_ids():
    for session in TRICKY + ["é" * 128]:
        assert validate_session_id(session) == session


def crc16_xmodem(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def cluster_slot(key: str) -> int:
    """Redis Cluster's rule: hash only what lies between the first '{' and the next '}',
    if that is non-empty; otherwise the whole key."""
    raw = key.encode()
    start = raw.find(b"{")
    if start != -1:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1 : end]
    return crc16_xmodem(raw) % 16384


def test_cluster_slot_helper_matches_the_redis_specification():
    assert crc16_xmodem(b"123456789") == 0x31C3  # the test vector in the cluster spec
    assert cluster_slot("{user1000}.following") == cluster_slot("{user1000}.followers")
    assert cluster_slot("foo{}{bar}") == crc16_xmodem(b"foo{}{bar}") % 16384


def test_every_key_of_a_session_lands_in_one_cluster_slot():
    keyspace = Keyspace("rc")
    for session in TRICKY + ["}{", "{{", "}}", "a}b{c", "x" * 200 + "}"]:
        keys = keyspace.session("acme", session).all
        slots = {cluster_slot(k) for k in keys}
        assert len(slots) == 1, session
        # The tag is the tenant and the encoded id, nothing more, and holds no brace.
        tag = hash_tag(keys[0])
        assert tag == f"acme:{encode_session_id(session)}" and not set(tag) & set("{}")
    assert cluster_slot(keyspace.sessions_index("acme")) == cluster_slot(keyspace.usage("acme"))


def test_tenant_patterns_match_every_data_key_of_the_tenant_only():
    import fnmatch

    keyspace = Keyspace("rc")
    patterns = keyspace.tenant_data_patterns("acme")
    for pattern in patterns:
        # Only the trailing '*' is a glob character; braces are literal in Redis globs.
        assert not set(pattern[:-1]) & set("*?[]\\") and pattern.endswith("*")
    mine = [*keyspace.session("acme", "s").all, keyspace.sessions_index("acme"), keyspace.usage("acme")]
    for key in mine:
        assert any(fnmatch.fnmatchcase(key, p) for p in patterns), key
    for tenant in ("acme-2", "acm", "acme_x", "xacme"):
        theirs = [*keyspace.session(tenant, "s").all, keyspace.sessions_index(tenant), keyspace.usage(tenant)]
        for key in theirs:
            assert not any(fnmatch.fnmatchcase(key, p) for p in patterns), key
