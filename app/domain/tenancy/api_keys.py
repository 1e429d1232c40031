"""API key format, generation and verification.

A key reads ``rk_<key_id>_<secret>``: ``key_id`` (12 base62 characters) is public — it is
shown in listings and logs and used to look the key up; ``secret`` (43 base62 characters,
about 256 bits from ``secrets``) is shown once and only its SHA-256 is stored. A fast hash is
right here: the secret is a uniformly random 256-bit value, so nothing is brute-forceable
from the digest, and a slow KDF would cost CPU on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

KEY_PREFIX = "rk_"
_ALPHABET = string.ascii_letters + string.digits
_KEY_ID_LEN = 12
_SECRET_LEN = 43
_KEY_RE = re.compile(rf"^rk_([A-Za-z0-9]{{{_KEY_ID_LEN}}})_([A-Za-z0-9]{{{_SECRET_LEN}}})$")


@dataclass(frozen=True, slots=True)
class NewKey:
    key_id: str
    api_key: str
    secret_hash: str


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_key() -> NewKey:
    key_id, secret = _random(_KEY_ID_LEN), _random(_SECRET_LEN)
    return NewKey(key_id=key_id, api_key=f"{KEY_PREFIX}{key_id}_{secret}", secret_hash=hash_secret(secret))


def public_prefix(key_id: str) -> str:
    """The part of a key that listings show: ``rk_<key_id>_``."""
    return f"{KEY_PREFIX}{key_id}_"


def parse_key(api_key: str) -> tuple[str, str] | None:
    """Split a presented key into (key_id, secret); ``None`` when it is not our format.

    Rejecting malformed keys here spares a Redis lookup for garbage credentials.
    """
    if len(api_key) != len(KEY_PREFIX) + _KEY_ID_LEN + 1 + _SECRET_LEN:
        return None
    match = _KEY_RE.match(api_key)
    return (match.group(1), match.group(2)) if match else None


def secret_matches(secret: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented secret with the stored digest."""
    return hmac.compare_digest(hash_secret(secret).encode(), stored_hash.encode())


def token_matches(presented: str, expected: str) -> bool:
    """Constant-time comparison for the operator token (compared as digests, so the
    comparison time does not depend on the length of either value)."""
    return hmac.compare_digest(
        hashlib.sha256(presented.encode()).digest(), hashlib.sha256(expected.encode()).digest()
    )
