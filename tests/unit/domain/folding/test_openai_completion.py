"""The completion function over an openai client: the request it sends and its errors."""

from __future__ import annotations

from types import SimpleNamespace

import httpx2 as httpx  # the installed openai client is built on httpx2, not httpx
import openai
import pytest

from app.domain import tokens
from app.domain.folding.openai_completion import openai_completion
from app.domain.folding.summarizer import ChunkedSummarizer, Line, SummarizerError

URL = "https://llm.example/v1/chat/completions"


class StubClient:
    """``client.chat.completions.create`` returns ``reply`` or raises ``error``; records kwargs."""

    def __init__(self, reply=None, error: Exception | None = None) -> None:
        self.requests: list[dict] = []
        self.reply, self.error = reply, error
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self._create))

    def _create(self, **kwargs):
        self.requests.append(kwargs)
        if self.error is not None:
            raise self.error
        return self.reply


def reply(content: str | None, prompt_tokens: int | None = 11, completion_tokens: int | None = 3):
    usage = (
        SimpleNamespace(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        if prompt_tokens is not None or completion_tokens is not None
        else None
    )
    choices = [SimpleNamespace(message=SimpleNamespace(content=content))] if content != "<no choices>" else []
    return SimpleNamespace(choices=choices, usage=usage)


def response(status: int, retry_after: str | None = None) -> httpx.Response:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return httpx.Response(status, headers=headers, request=httpx.Request("POST", URL))


def error_from(client_error: Exception) -> SummarizerError:
    complete = openai_completion(StubClient(error=client_error), max_output_tokens=64)
    with pytest.raises(SummarizerError) as raised:
        complete("m", "system", "user")
    return raised.value


def test_the_request_carries_the_model_both_messages_the_output_bound_and_temperature_zero():
    client = StubClient(reply("the summary"))
    answer = openai_completion(client, max_output_tokens=77)("gpt-x", "be brief", "the lines")
    assert answer == ("the summary", 11, 3)
    (request,) = client.requests
    assert request["model"] == "gpt-x"
    assert request["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "the lines"},
    ]
    assert request["max_tokens"] == 77 and request["temperature"] == 0


def test_missing_token_counts_in_the_usage_count_as_zero():
    complete = openai_completion(StubClient(reply("x", None, 0)), max_output_tokens=8)
    assert complete("m", "s", "u") == ("x", 0, 0)


def test_without_usage_the_tokens_are_estimated_so_budgets_still_move():
    complete = openai_completion(StubClient(reply("a short answer", None, None)), max_output_tokens=8)
    answer, prompt_tokens, completion_tokens = complete("gpt-4o-mini", "system prompt", "user message")
    assert answer == "a short answer"
    expected_prompt = (
        tokens.count_tokens("system prompt", "gpt-4o-mini")
        + tokens.count_tokens("user message", "gpt-4o-mini")
        + 7
    )
    assert prompt_tokens == expected_prompt
    assert completion_tokens == tokens.count_tokens("a short answer", "gpt-4o-mini") > 0


def test_an_answer_without_choices_is_none():
    complete = openai_completion(StubClient(reply("<no choices>")), max_output_tokens=8)
    assert complete("m", "s", "u") == (None, 11, 3)


def test_rate_limited_carries_the_servers_retry_after():
    exc = openai.RateLimitError("slow down", response=response(429, "7"), body=None)
    error = error_from(exc)
    assert error.code == "llm_rate_limited"
    assert error.retry_after == 7.0


def test_rate_limited_without_retry_after_leaves_the_delay_to_the_backoff():
    error = error_from(openai.RateLimitError("slow down", response=response(429), body=None))
    assert error.code == "llm_rate_limited" and error.retry_after is None


def test_another_status_names_it_and_keeps_a_numeric_retry_after():
    error = error_from(openai.InternalServerError("down", response=response(503, "2.5"), body=None))
    assert error.code == "llm_status"
    assert "503" in str(error)
    assert error.retry_after == 2.5


def test_a_retry_after_that_is_not_a_number_is_ignored():
    exc = openai.RateLimitError(
        "slow down", response=response(429, "Wed, 21 Oct 2026 07:28:00 GMT"), body=None
    )
    assert error_from(exc).retry_after is None


def test_a_timeout_is_its_own_error_code():
    error = error_from(openai.APITimeoutError(request=httpx.Request("POST", URL)))
    assert error.code == "llm_timeout" and error.retry_after is None


def test_a_connection_error_is_a_generic_llm_error():
    error = error_from(openai.APIConnectionError(request=httpx.Request("POST", URL)))
    assert error.code == "llm_error"
    assert "APIConnectionError" in str(error)


def test_errors_that_are_not_the_clients_propagate_unchanged():
    complete = openai_completion(StubClient(error=KeyError("bug")), max_output_tokens=8)
    with pytest.raises(KeyError):
        complete("m", "s", "u")


def test_it_drives_the_chunked_summarizer_and_its_spend_is_summed():
    client = StubClient(reply("merged summary", 40, 6))
    result = ChunkedSummarizer(openai_completion(client, max_output_tokens=64)).summarize(
        "old", [Line("Human", "hello")], model="gpt-4o-mini"
    )
    assert result.summary == "merged summary"
    assert (result.calls, result.prompt_tokens, result.completion_tokens) == (1, 40, 6)
    assert client.requests[0]["max_tokens"] == 64
