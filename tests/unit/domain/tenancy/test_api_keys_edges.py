"""API key edge cases the format tests leave out: the listed prefix, line breaks and
whitespace around a key, and operator tokens of different lengths."""

from __future__ import annotations

import pytest

from app.domain.tenancy import api_keys as keys


def test_the_public_prefix_is_how_every_key_of_that_id_begins_and_reveals_no_secret():
    new = keys.generate_key()
    prefix = keys.public_prefix(new.key_id)
    assert prefix == f"rk_{new.key_id}_"
    assert new.api_key.startswith(prefix)
    assert keys.parse_key(new.api_key)[1] == new.api_key[len(prefix) :]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: k + "\n",
        lambda k: k[:-1] + "\n",
        lambda k: " " + k[1:],
        lambda k: k[:-1] + " ",
        lambda k: "\n" + k,
        lambda k: k.upper(),
    ],
)
def test_a_key_with_a_line_break_whitespace_or_a_changed_prefix_does_not_parse(mangle):
    api_key = keys.generate_key().api_key
    assert keys.parse_key(api_key) is not None
    assert keys.parse_key(mangle(api_key)) is None


@pytest.mark.parametrize(
    ("presented", "expected"),
    [("", "token"), ("token", ""), ("tok", "token"), ("token-and-more", "token"), ("Token", "token")],
)
def test_an_operator_token_matches_only_itself(presented, expected):
    assert not keys.token_matches(presented, expected)
    assert keys.token_matches(expected, expected)


def test_a_secret_never_matches_a_hash_that_is_not_a_sha256_digest():
    new = keys.generate_key()
    secret = keys.parse_key(new.api_key)[1]
    assert not keys.secret_matches(secret, "")
    assert not keys.secret_matches(secret, new.secret_hash.upper())
    assert not keys.secret_matches(secret, "0" * 64)
