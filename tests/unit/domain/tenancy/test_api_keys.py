"""API key format: prefixed, random, parsed strictly, stored as SHA-256 only."""

import hashlib

from app.domain.tenancy import api_keys as keys


def test_generated_keys_have_the_documented_shape_and_are_unique():
    generated = [keys.generate_key() for _ in range(50)]
    assert len({k.api_key for k in generated}) == 50
    for new in generated:
        assert new.api_key.startswith(f"rk_{new.key_id}_")
        key_id, secret = keys.parse_key(new.api_key)
        assert key_id == new.key_id and len(secret) == 43  # 43 base62 chars ≈ 256 bits
        assert new.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
        assert secret not in new.secret_hash


def test_parse_rejects_anything_else():
    good = keys.generate_key().api_key
    for bad in (
        "",
        "rk_",
        good[:-1],
        good + "x",
        good.replace("rk_", "sk_"),
        good.replace("_", "-"),
        "rk_" + "!" * 12 + "_" + "a" * 43,
    ):
        assert keys.parse_key(bad) is None


def test_secret_and_token_comparison():
    new = keys.generate_key()
    secret = keys.parse_key(new.api_key)[1]
    assert keys.secret_matches(secret, new.secret_hash)
    forged = secret[:-1] + ("x" if secret[-1] != "x" else "y")  # always one character off
    assert not keys.secret_matches(forged, new.secret_hash)
    assert keys.token_matches("admin-token", "admin-token")
    assert not keys.token_matches("admin-token", "admin-token2")


def test_keys_carry_at_least_256_bits_of_entropy_and_a_recognisable_prefix():
    import math

    new = keys.generate_key()
    key_id, secret = keys.parse_key(new.api_key)
    assert new.api_key.startswith("rk_") and len(key_id) == 12
    assert set(secret) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
    assert len(secret) * math.log2(62) >= 256
    # The secret is drawn afresh each time, not derived from the id.
    assert len({keys.parse_key(keys.generate_key().api_key)[1] for _ in range(20)}) == 20


def test_the_stored_hash_depends_only_on_the_secret():
    assert keys.hash_secret("abc") == hashlib.sha256(b"abc").hexdigest()
    assert not keys.secret_matches("abc", keys.hash_secret("abd"))
    assert keys.secret_matches("abc", keys.hash_secret("abc"))
