"""The project's fake LLM speaks OpenAI's API well enough for the real openai client."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from app.domain import tokens
from devtools.fake_llm import FakeLLM

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    server = FakeLLM().start()
    yield server
    server.stop()


def client_for(fake: FakeLLM | str, timeout: float = 5.0) -> openai.OpenAI:
    base_url = fake if isinstance(fake, str) else fake.base_url
    return openai.OpenAI(base_url=base_url, api_key="test", max_retries=0, timeout=timeout)


def chat(client: openai.OpenAI, *contents: str, **extra: object):
    return client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": c} for c in contents], **extra
    )


def post_json(url: str, body: object) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.load(exc)


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def root_of(base_url: str) -> str:
    return base_url.removesuffix("/v1")


def test_markers_are_echoed_in_order_without_deduplication(fake):
    with client_for(fake) as client:
        response = chat(client, "Current: [[a]] [[b]]", "New lines: [[b]] then [[m:1_x-y.z]]")
    assert response.object == "chat.completion" and response.model == "gpt-4o-mini"
    choice = response.choices[0]
    assert (choice.index, choice.finish_reason, choice.message.role) == (0, "stop", "assistant")
    assert choice.message.content == "Summary: [[a]] [[b]] [[b]] [[m:1_x-y.z]]"
    assert fake.requests[0]["messages"][1]["content"] == "New lines: [[b]] then [[m:1_x-y.z]]"


def test_none_wins_over_markers_and_plain_text_quotes_the_last_message(fake):
    with client_for(fake) as client:
        assert chat(client, "[[x]]", "[[y]] [[FAKE:NONE]]").choices[0].message.content == "NONE"
        plain = chat(client, "first message", " ".join(f"w{i}" for i in range(20)))
        not_markers = chat(client, "[single] [[]] [[has space]] [[" + "a" * 81 + "]]")
    assert plain.choices[0].message.content == "Summary of the conversation: " + " ".join(
        f"w{i}" for i in range(12)
    )
    assert not_markers.choices[0].message.content.startswith("Summary of the conversation: ")


def test_usage_is_counted_with_the_project_tokenizer(fake):
    messages = [
        {"role": "system", "content": "You summarize."},
        {"role": "user", "content": "lines [[l1]] and [[l2]] <|endoftext|>"},
    ]
    with client_for(fake) as client:
        response = client.chat.completions.create(model="gpt-4", messages=messages)
    usage = response.usage
    expected_prompt = 3 + sum(tokens.count_message_tokens(m["role"], m["content"], "gpt-4") for m in messages)
    assert usage.prompt_tokens == expected_prompt
    assert usage.completion_tokens == tokens.count_tokens(response.choices[0].message.content, "gpt-4")
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert (fake.total_prompt_tokens, fake.total_completion_tokens) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    assert (fake.chat_calls, fake.chat_completed, fake.chat_failed) == (1, 1, 0)


def test_max_tokens_truncates_plain_answers_but_never_marker_answers(fake):
    with client_for(fake) as client:
        cut = chat(client, "one two three four five six", max_tokens=3)
        markers = chat(client, "[[a]] [[b]] [[c]] [[d]]", max_tokens=2)
    assert cut.choices[0].finish_reason == "length"
    assert tokens.count_tokens(cut.choices[0].message.content, "gpt-4o-mini") == 3
    assert cut.usage.completion_tokens == 3
    assert markers.choices[0].message.content == "Summary: [[a]] [[b]] [[c]] [[d]]"


def test_embeddings_are_deterministic_unit_vectors(fake):
    with client_for(fake) as client:
        # openai 3.x asks for base64 (float32) unless told otherwise, and decodes it.
        pair = client.embeddings.create(model="e", input=["hello", "world"])
        again = client.embeddings.create(model="e", input="hello")
        floats = client.embeddings.create(model="e", input="hello", encoding_format="float")
        models = client.models.list()
    assert fake.requests == [], "embeddings are not chat calls"
    assert pair.object == "list" and [d.index for d in pair.data] == [0, 1]
    assert all(len(d.embedding) == 64 for d in pair.data)
    assert pair.data[0].embedding == again.data[0].embedding != pair.data[1].embedding
    assert abs(sum(v * v for v in pair.data[1].embedding) - 1.0) < 1e-6
    assert abs(sum(v * v for v in floats.data[0].embedding) - 1.0) < 1e-9
    assert floats.data[0].embedding == pytest.approx(again.data[0].embedding, abs=1e-6)
    assert pair.usage.prompt_tokens == pair.usage.total_tokens == 2
    assert [m.id for m in models.data] == ["fake"]


def test_injected_500_and_429_with_retry_after(fake):
    with client_for(fake) as client:
        fake.configure(fail_rate=1.0, fail_status=500)
        with pytest.raises(openai.InternalServerError) as server_error:
            chat(client, "x")
        fake.configure(fail_status=429, retry_after=7)
        with pytest.raises(openai.RateLimitError) as rate_limited:
            chat(client, "x")
        fake.configure(fail_rate=0.0)
        assert chat(client, "[[ok]]").choices[0].message.content == "Summary: [[ok]]"
    assert server_error.value.status_code == 500
    assert rate_limited.value.response.headers["retry-after"] == "7"
    assert rate_limited.value.code == "rate_limit_exceeded"
    assert (fake.chat_calls, fake.chat_completed, fake.chat_failed) == (3, 1, 2)
    assert fake.total_prompt_tokens > 0  # only the successful call counted


def test_fault_dice_are_reproducible_with_a_seed():
    def outcomes(seed: int) -> list[bool]:
        server = FakeLLM(fail_rate=0.5, seed=seed).start()
        try:
            with client_for(server) as client:
                results = []
                for _ in range(12):
                    try:
                        chat(client, "x")
                        results.append(True)
                    except openai.InternalServerError:
                        results.append(False)
                return results
        finally:
            server.stop()

    first = outcomes(3)
    assert first == outcomes(3)
    assert True in first and False in first


def test_hold_blocks_calls_until_released(fake):
    results = []
    with client_for(fake) as client:
        fake.hold()
        worker = threading.Thread(target=lambda: results.append(chat(client, "[[h]]")))
        worker.start()
        assert fake.wait_for_calls(1, timeout=5)
        assert not fake.wait_for_calls(2, timeout=0.05)
        time.sleep(0.1)
        assert fake.chat_completed == 0 and not results and fake.stats()["held"]
        fake.release()
        worker.join(timeout=5)
    assert results[0].choices[0].message.content == "Summary: [[h]]"
    assert fake.chat_completed == 1


def test_a_hang_times_out_the_client_and_stop_still_returns(fake):
    fake.configure(hang_rate=1.0)
    with client_for(fake, timeout=0.5) as client, pytest.raises(openai.APITimeoutError):
        chat(client, "x")
    assert fake.chat_calls == 1
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 2


def test_stop_releases_held_calls():
    server = FakeLLM().start()
    server.hold()
    errors: list[Exception] = []

    def call() -> None:
        with client_for(server) as client:
            try:
                chat(client, "x")
            except openai.APIError as exc:
                errors.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    assert server.wait_for_calls(1)
    started = time.monotonic()
    server.stop()
    worker.join(timeout=5)
    assert time.monotonic() - started < 2 and not worker.is_alive()
    assert len(errors) == 1 and server.chat_completed == 0


def test_stop_without_start_returns_at_once():
    stopper = threading.Thread(target=FakeLLM().stop, daemon=True)
    started = time.monotonic()
    stopper.start()
    stopper.join(timeout=2)
    assert not stopper.is_alive(), "stop() blocked on a server that never started"
    assert time.monotonic() - started < 2


def test_bad_requests_and_control_get_400s(fake):
    root = root_of(fake.base_url)
    status, body = post_json(fake.base_url + "/chat/completions", {"model": "m", "messages": "nope"})
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    assert post_json(root + "/_control", {"fail_rate": 2})[0] == 400
    assert post_json(root + "/_control", {"bogus": 1})[0] == 400
    status, stats = post_json(root + "/_control", {"latency": 0.01, "hold": True})
    assert status == 200 and stats["held"] and stats["latency"] == 0.01
    assert fake.held
    post_json(root + "/_control", {"hold": False})
    assert not fake.held
    assert fake.chat_calls == 0, "a malformed request is not a chat call"


def test_command_line_server_answers_and_is_controllable():
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devtools.fake_llm",
            "--port",
            "0",
            "--fail-status",
            "429",
            "--retry-after",
            "2",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("fake-llm listening on http://127.0.0.1:"), line
        base_url = line.split()[-1]
        assert base_url.endswith("/v1") and not base_url.endswith(":0/v1")
        with client_for(base_url) as client:
            assert chat(client, "[[cli]]").choices[0].message.content == "Summary: [[cli]]"
            assert post_json(root_of(base_url) + "/_control", {"fail_rate": 1.0})[0] == 200
            with pytest.raises(openai.RateLimitError) as caught:
                chat(client, "x")
        assert caught.value.response.headers["retry-after"] == "2"
        stats = get_json(root_of(base_url) + "/_stats")
        assert (stats["chat_calls"], stats["chat_completed"], stats["chat_failed"]) == (2, 1, 1)
        assert stats["fail_rate"] == 1.0 and "requests" not in stats
    finally:
        process.terminate()
        process.wait(timeout=5)
