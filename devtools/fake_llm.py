"""A fake OpenAI-compatible server for tests, demos and benchmarks.

    python -m devtools.fake_llm --port 9009 --latency 0.5 --fail-rate 0.2 [--fail-status 429]
        [--retry-after 1] [--hang-rate 0.0] [--hang-seconds 3600] [--seed 0] [--host 127.0.0.1]
        [--verbose]

It prints ``fake-llm listening on http://HOST:PORT/v1`` once it accepts connections
(``--port 0`` picks a free port and the line shows it). Point the real ``openai`` client at
it (``base_url`` or ``OPENAI_BASE_URL``): real HTTP, nothing of ours mocked. Stdlib only,
plus the project's offline tokenizer for ``usage``.

Deterministic answers (tests rely on these rules):

``POST /v1/chat/completions``
    Markers are substrings matching ``\\[\\[[A-Za-z0-9:_\\-.]{1,80}\\]\\]``, e.g. ``[[m:1]]``.

    1. If any message contains ``[[FAKE:NONE]]``, the answer is ``NONE``.
    2. Otherwise, if there are markers, the answer is ``"Summary: "`` followed by every
       marker, space-separated, in order of appearance across all messages and NOT
       deduplicated, so a line summarized twice shows up twice.
    3. Otherwise the answer is ``"Summary of the conversation: "`` followed by the first
       12 whitespace-separated words of the last message.

    ``max_tokens`` (or ``max_completion_tokens``) truncates the answer to that many tokens
    in case 3 only (``finish_reason`` is then ``"length"``); marker answers are never cut.
    ``usage.prompt_tokens`` is 3 plus ``count_message_tokens(role, content)`` per message,
    ``usage.completion_tokens`` is ``count_tokens(answer)``, both with the request's model.
    Content given as a list of parts counts its ``text`` parts.

``POST /v1/embeddings``
    One deterministic 64-dimensional unit vector per input (a string, a list of strings,
    or token arrays), derived from SHA-256 of the input; ``encoding_format="base64"`` gets
    little-endian float32 as base64, like the real API.

``GET /v1/models``
    One model, ``fake``.

Faults apply to chat completions (embeddings only get ``latency``). Set them at start
(flags or constructor), at run time with ``FakeLLM.configure(...)`` in-process, or over
HTTP with ``POST /_control`` and the same fields plus ``{"hold": true|false}``:

- ``latency``: seconds to wait before answering;
- ``fail_rate`` (0..1): that fraction of calls is answered with ``fail_status`` (default
  500) and an OpenAI-style error body; a 429 carries ``Retry-After: <retry_after>``;
- ``hang_rate`` (0..1): that fraction of calls waits ``hang_seconds`` (default 3600, i.e.
  until the client times out) before answering;
- ``hold``: every chat call blocks until released (to prove a request returns while the
  LLM call is still in flight).

The fault dice come from ``random.Random(seed)``, so a run is reproducible. ``GET /_stats``
returns the counters and settings as JSON. Request bodies are never logged (they are
users' conversations); ``--verbose`` logs one line per request: method, path, status.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import math
import random
import re
import struct
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from app.domain import tokens

MARKER = re.compile(r"\[\[[A-Za-z0-9:_\-.]{1,80}\]\]")
NONE_MARKER = "[[FAKE:NONE]]"
EMBEDDING_DIMS = 64


def _rate(value: Any) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise ValueError("must be between 0 and 1")
    return rate


def _seconds(value: Any) -> float:
    seconds = float(value)
    if not (seconds >= 0.0 and math.isfinite(seconds)):
        raise ValueError("must be a finite number of seconds >= 0")
    return seconds


def _status(value: Any) -> int:
    status = int(value)
    if not 400 <= status <= 599:
        raise ValueError("must be an HTTP error status (4xx or 5xx)")
    return status


# Runtime-settable fields and how to validate them: a bad value over /_control must be a
# 400, not a crash of every later request.
_SETTINGS: dict[str, Callable[[Any], Any]] = {
    "latency": _seconds,
    "fail_rate": _rate,
    "fail_status": _status,
    "retry_after": _seconds,
    "hang_rate": _rate,
    "hang_seconds": _seconds,
    "embedding_fail_rate": _rate,
}


class BadRequest(ValueError):
    """The request is malformed; answered with a 400 like the real API."""


def message_text(content: Any) -> str:
    """A message's text: a plain string, or the ``text`` parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def chat_answer(messages: list[dict[str, Any]]) -> tuple[str, bool]:
    """The deterministic answer and whether it may be truncated (see the module doc)."""
    texts = [message_text(m.get("content")) for m in messages]
    # Markers cannot contain a newline, so joining cannot create or merge any.
    joined = "\n".join(texts)
    if NONE_MARKER in joined:
        return "NONE", False
    markers = MARKER.findall(joined)
    if markers:
        return "Summary: " + " ".join(markers), False
    last_words = (texts[-1] if texts else "").split()[:12]
    return "Summary of the conversation: " + " ".join(last_words), True


_WORD = re.compile(r"\w+")


def _hashed(feature: str, dims: int) -> tuple[int, float]:
    digest = hashlib.sha256(feature.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:4], "little") % dims, 1.0 if digest[4] & 1 else -1.0


def embedding(text: str, dims: int = EMBEDDING_DIMS) -> list[float]:
    """A deterministic unit vector from the text's words (feature hashing): equal texts
    embed equally, texts that share words are close, unrelated ones nearly orthogonal —
    enough for a vector search to find something meaningful offline."""
    raw = [0.0] * dims
    words = _WORD.findall(text.lower()) or [text]
    for word in words:
        index, sign = _hashed(word, dims)
        raw[index] += sign
    # A small text-specific component, so different texts of the same words still differ.
    index, sign = _hashed("\x00" + text, dims)
    raw[index] += 0.01 * sign
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw]


def _embedding_inputs(value: Any) -> list[str]:
    # The API takes a string, a list of strings, a token array or a list of token arrays;
    # token arrays are keyed by their JSON so they embed deterministically too.
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [json.dumps(value)]
    if isinstance(value, list) and value:
        items = []
        for item in value:
            if isinstance(item, str):
                items.append(item)
            elif isinstance(item, list) and all(isinstance(v, int) for v in item):
                items.append(json.dumps(item))
            else:
                raise BadRequest("'input' items must be strings or token arrays")
        return items
    raise BadRequest("'input' must be a non-empty string or array")


def _header_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def _error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code, "param": None}}


class FakeLLM:
    """The fake server, in-process: ``FakeLLM().start()`` … ``.stop()``.

    Counters are updated under a lock; ``requests`` holds every chat request body received,
    in order, for assertions on what the app sent.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        fail_rate: float = 0.0,
        fail_status: int = 500,
        retry_after: float = 1,
        hang_rate: float = 0.0,
        hang_seconds: float = 3600.0,
        seed: int = 0,
        *,
        verbose: bool = False,
    ) -> None:
        self.latency = 0.0
        self.fail_rate = 0.0
        self.fail_status = 500
        self.retry_after: float = 1
        self.hang_rate = 0.0
        self.hang_seconds = 3600.0
        self.embedding_fail_rate = 0.0
        self.verbose = verbose
        self._lock = threading.Lock()
        self._calls_changed = threading.Condition(self._lock)
        self._rng = random.Random(seed)
        self.configure(
            latency=latency,
            fail_rate=fail_rate,
            fail_status=fail_status,
            retry_after=retry_after,
            hang_rate=hang_rate,
            hang_seconds=hang_seconds,
        )
        # Set = open. Held calls and hangs wait on events so stop() can wake them all.
        self._gate = threading.Event()
        self._gate.set()
        self._stopping = threading.Event()
        self.chat_calls = 0
        self.chat_completed = 0
        self.chat_failed = 0
        self.total_prompt_tokens = 0
        self.total_completion_tokens = 0
        self.requests: list[dict[str, Any]] = []
        self.embedding_calls = 0
        self.embedding_failed = 0
        self.embedded_texts: list[str] = []  # every input embedded successfully, in order
        self.azure_deployments: list[str] = []  # the deployment of each Azure-style call
        self._server = _Server((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- lifecycle and control -----------------------------------------------------------

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> FakeLLM:
        """Serve in a daemon thread; returns self so ``FakeLLM().start()`` reads naturally."""
        if self._thread is None:
            # A short poll interval keeps stop() (and so each test's teardown) quick.
            self._thread = threading.Thread(
                target=self._server.serve_forever, args=(0.05,), name="fake-llm", daemon=True
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread (the command line)."""
        self._server.serve_forever()

    def stop(self) -> None:
        """Stop serving and wake held or hanging calls (they get a 503) so nothing lingers."""
        self._stopping.set()
        self._gate.set()
        # shutdown() waits for serve_forever to notice; it would wait forever if never started.
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def configure(self, **fields: Any) -> None:
        """Change fault settings at run time; unknown names or bad values raise ValueError."""
        unknown = set(fields) - set(_SETTINGS) - {"seed"}
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        parsed = {}
        for name, value in fields.items():
            try:
                parsed[name] = int(value) if name == "seed" else _SETTINGS[name](value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name}: {exc}") from None
        seed = parsed.pop("seed", None)
        with self._lock:
            for name, value in parsed.items():
                setattr(self, name, value)
            if seed is not None:
                self._rng.seed(seed)  # restart the fault dice, e.g. between benchmark runs

    def hold(self) -> None:
        """Make every chat call (in flight or new) wait until ``release()``."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    @property
    def held(self) -> bool:
        return not self._gate.is_set()

    def wait_for_calls(self, n: int, timeout: float = 5.0) -> bool:
        """True once ``n`` chat calls have been received (held ones included)."""
        with self._calls_changed:
            return self._calls_changed.wait_for(lambda: self.chat_calls >= n, timeout=timeout)

    def stats(self) -> dict[str, Any]:
        """Counters and current settings, without request bodies."""
        with self._lock:
            return {
                "chat_calls": self.chat_calls,
                "chat_completed": self.chat_completed,
                "chat_failed": self.chat_failed,
                "total_prompt_tokens": self.total_prompt_tokens,
                "total_completion_tokens": self.total_completion_tokens,
                "embedding_calls": self.embedding_calls,
                "embedding_failed": self.embedding_failed,
                "held": self.held,
                **{name: getattr(self, name) for name in _SETTINGS},
            }

    def control(self, body: dict[str, Any]) -> None:
        """``POST /_control``: ``configure`` fields plus ``hold``."""
        fields = dict(body)
        hold = fields.pop("hold", None)
        if hold not in (None, True, False):
            raise ValueError("hold: must be true or false")
        self.configure(**fields)
        if hold is True:
            self.hold()
        elif hold is False:
            self.release()

    # --- request handling (the server's threads) -----------------------------------------

    def _fault(self) -> tuple[str | None, dict[str, Any]]:
        with self._lock:
            settings = {name: getattr(self, name) for name in _SETTINGS}
            # Both dice are rolled on every call so the sequence does not depend on settings.
            fail_roll, hang_roll = self._rng.random(), self._rng.random()
        if fail_roll < settings["fail_rate"]:
            return "fail", settings
        if hang_roll < settings["hang_rate"]:
            return "hang", settings
        return None, settings

    def _fail(self, status: int, retry_after: float) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self.chat_failed += 1
        headers: dict[str, str] = {}
        if status == 429:
            headers["Retry-After"] = _header_seconds(retry_after)
            body = _error("Rate limit reached (injected by fake-llm).", "requests", "rate_limit_exceeded")
        elif status == 503 and self._stopping.is_set():
            body = _error("fake-llm is shutting down.", "server_error", "service_unavailable")
        else:
            body = _error(f"Injected failure ({status}) from fake-llm.", "server_error", "server_error")
        return status, body, headers

    def handle_chat(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Answer one chat completion: (status, JSON body, extra headers)."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise BadRequest("'messages' must be an array of message objects")
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise BadRequest("'max_tokens' must be a positive integer")
        with self._calls_changed:
            self.chat_calls += 1
            number = self.chat_calls
            self.requests.append(body)
            self._calls_changed.notify_all()

        self._gate.wait()
        fault, settings = self._fault()
        if settings["latency"]:
            self._stopping.wait(settings["latency"])
        if fault == "hang":
            self._stopping.wait(settings["hang_seconds"])
        if self._stopping.is_set():
            return self._fail(503, 0)
        if fault == "fail":
            return self._fail(settings["fail_status"], settings["retry_after"])

        model = body.get("model") if isinstance(body.get("model"), str) else "fake"
        content, truncatable = chat_answer(messages)
        finish_reason = "stop"
        if limit is not None and truncatable:
            with contextlib.suppress(Exception):  # a broken tokenizer must not break the fake
                encoding = tokens.get_encoding(model)
                ids = encoding.encode_ordinary(content)
                if len(ids) > limit:
                    content, finish_reason = encoding.decode(ids[:limit]), "length"
        prompt_tokens = 3 + sum(
            tokens.count_message_tokens(
                m.get("role") if isinstance(m.get("role"), str) else "",
                message_text(m.get("content")),
                model,
            )
            for m in messages
        )
        completion_tokens = tokens.count_tokens(content, model)
        with self._lock:
            self.chat_completed += 1
            self.total_prompt_tokens += prompt_tokens
            self.total_completion_tokens += completion_tokens
        return (
            200,
            {
                "id": f"chatcmpl-fake-{number}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content, "refusal": None},
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
            {},
        )

    def handle_embeddings(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        texts = _embedding_inputs(body.get("input"))
        encoding_format = body.get("encoding_format") or "float"
        if encoding_format not in ("float", "base64"):
            raise BadRequest("'encoding_format' must be 'float' or 'base64'")
        dims = body.get("dimensions", EMBEDDING_DIMS)
        if not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= 8192:
            raise BadRequest("'dimensions' must be an integer from 1 to 8192")
        with self._lock:
            latency = self.latency
            self.embedding_calls += 1
            failing = self._rng.random() < self.embedding_fail_rate
            status, retry_after = self.fail_status, self.retry_after
        if latency:
            self._stopping.wait(latency)
        if failing:
            with self._lock:
                self.embedding_failed += 1
            headers = {"Retry-After": _header_seconds(retry_after)} if status == 429 else {}
            return (
                status,
                _error(f"Injected failure ({status}) from fake-llm.", "server_error", "server_error"),
                headers,
            )
        model = body.get("model") if isinstance(body.get("model"), str) else "fake-embedding"
        used = sum(tokens.count_tokens(text, model) for text in texts)
        data = []
        with self._lock:
            self.embedded_texts.extend(texts)
        for index, text in enumerate(texts):
            vector: Any = embedding(text, dims)
            if encoding_format == "base64":
                vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": vector})
        return (
            200,
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": used, "total_tokens": used},
            },
            {},
        )


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that disconnects mid-request (the chaos run SIGKILLs a worker) is normal
        # here, not a traceback on stderr.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _handler_for(fake: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the openai client expects
        server_version = "fake-llm"
        # Headers and body go out in two writes; with Nagle on, each answer waits ~40 ms for
        # the client's delayed ACK, which would distort latency measurements.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            if fake.verbose:
                # Only the request line and status reach here, never a body.
                sys.stderr.write(f"fake-llm {self.address_string()} {format % args}\n")

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            if fake._stopping.is_set():
                self.close_connection = True  # don't keep serving pooled connections after stop
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client timed out and left

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length > 0 else b""
            try:
                value = json.loads(raw or b"{}")
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise BadRequest("the body is not valid JSON") from None
            if not isinstance(value, dict):
                raise BadRequest("the body must be a JSON object")
            return value

        def _path(self) -> str:
            path = self.path.split("?", 1)[0].rstrip("/")
            # Azure OpenAI: /openai/deployments/<deployment>/<operation>?api-version=...
            if path.startswith("/openai/deployments/"):
                parts = path.split("/")
                if len(parts) >= 5:
                    fake.azure_deployments.append(parts[3])
                    return "/" + "/".join(parts[4:])
            return path

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            path = self._path()
            if path in ("/v1/models", "/models"):
                model = {"id": "fake", "object": "model", "created": 0, "owned_by": "recollect"}
                self._send(200, {"object": "list", "data": [model]})
            elif path == "/_stats":
                self._send(200, fake.stats())
            else:
                self._send(404, _error(f"Unknown path {path}", "invalid_request_error", "not_found"))

        def do_POST(self) -> None:  # noqa: N802 - stdlib naming
            path = self._path()
            try:
                body = self._body()
                if path in ("/v1/chat/completions", "/chat/completions"):
                    self._send(*fake.handle_chat(body))
                elif path in ("/v1/embeddings", "/embeddings"):
                    self._send(*fake.handle_embeddings(body))
                elif path == "/_control":
                    fake.control(body)
                    self._send(200, fake.stats())
                else:
                    self._send(404, _error(f"Unknown path {path}", "invalid_request_error", "not_found"))
            except ValueError as exc:  # BadRequest, or a bad /_control setting
                self._send(400, _error(str(exc), "invalid_request_error", "invalid_request"))
            except Exception as exc:  # noqa: BLE001 - answer, rather than drop the connection
                # The exception type only: a message or traceback could quote the request.
                self.log_message("internal error %s", type(exc).__name__)
                self._send(500, _error("fake-llm internal error", "server_error", "server_error"))

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.fake_llm",
        description="A fake OpenAI-compatible server with deterministic answers and injectable faults.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9009, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="fraction of chat calls that fail")
    parser.add_argument("--fail-status", type=int, default=500, choices=(429, 500, 502, 503))
    parser.add_argument("--retry-after", type=float, default=1, help="Retry-After of 429s, seconds")
    parser.add_argument("--hang-rate", type=float, default=0.0, help="fraction of chat calls that hang")
    parser.add_argument("--hang-seconds", type=float, default=3600.0)
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault dice")
    parser.add_argument("--verbose", action="store_true", help="one access-log line per request")
    args = parser.parse_args(argv)
    tokens.warm_up()  # so the first request is not slower than the rest
    try:
        fake = FakeLLM(
            args.host,
            args.port,
            latency=args.latency,
            fail_rate=args.fail_rate,
            fail_status=args.fail_status,
            retry_after=args.retry_after,
            hang_rate=args.hang_rate,
            hang_seconds=args.hang_seconds,
            seed=args.seed,
            verbose=args.verbose,
        )
    except (ValueError, OSError) as exc:  # a bad setting, or the port is taken
        parser.error(str(exc))
    # The socket is bound and listening once the constructor returns, so this line is true.
    print(f"fake-llm listening on {fake.base_url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        fake.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
