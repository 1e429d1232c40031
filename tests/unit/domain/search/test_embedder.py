"""OpenAIEmbedder with the real openai client against the project's fake server (real
HTTP, nothing of ours mocked), plus a stub client for answers the fake never gives."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import openai
import pytest

from app.domain import tokens
from app.domain.scheduling.outcome import Outcome
from app.domain.search.embedder import EmbeddingError, OpenAIEmbedder
from app.domain.search.service import SearchService
from devtools.fake_llm import EMBEDDING_DIMS, embedding

from .fakes import TENANT, index_state

MODEL = "text-embedding-3-small"


def client_for(base_url: str, timeout: float = 5.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="test", max_retries=0, timeout=timeout)


@pytest.fixture
def client(fake_llm):
    client = client_for(fake_llm.base_url)
    yield client
    client.close()


def embed_error(embedder: OpenAIEmbedder, texts: list[str]) -> EmbeddingError:
    with pytest.raises(EmbeddingError) as raised:
        embedder.embed(texts)
    return raised.value


# --- answers -------------------------------------------------------------------------------------


def test_each_text_gets_the_servers_vector_in_order(client, fake_llm):
    texts = ["red apple", "green pear", "red apple"]
    embedded = OpenAIEmbedder(client, MODEL).embed(texts)
    assert len(embedded.vectors) == 3
    for text, vector in zip(texts, embedded.vectors, strict=True):
        assert len(vector) == EMBEDDING_DIMS
        assert vector == pytest.approx(embedding(text), abs=1e-6)
    assert embedded.vectors[0] == embedded.vectors[2] != embedded.vectors[1]
    assert fake_llm.embedded_texts == texts
    assert fake_llm.embedding_calls == 1, "one request for the batch"


def test_the_prompt_tokens_are_the_servers_usage(client):
    texts = ["a somewhat longer text to count", "short"]
    embedded = OpenAIEmbedder(client, MODEL).embed(texts)
    assert embedded.prompt_tokens == sum(tokens.count_tokens(t, MODEL) for t in texts) > 0


def test_configured_dimensions_are_asked_for(client):
    embedded = OpenAIEmbedder(client, MODEL, dimensions=12).embed(["apple"])
    assert len(embedded.vectors[0]) == 12
    assert embedded.vectors[0] == pytest.approx(embedding("apple", 12), abs=1e-6)


def test_without_dimensions_the_models_own_are_used(client):
    assert len(OpenAIEmbedder(client, MODEL, dimensions=None).embed(["apple"]).vectors[0]) == EMBEDDING_DIMS


def test_the_embedder_names_its_model():
    assert OpenAIEmbedder(object(), "my-model").model == "my-model"


# --- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 400])
def test_a_failing_status_is_an_embedding_status_error(client, fake_llm, status):
    fake_llm.configure(embedding_fail_rate=1.0, fail_status=status)
    error = embed_error(OpenAIEmbedder(client, MODEL), ["apple"])
    assert error.code == "embedding_status"
    assert str(status) in str(error)
    assert error.retry_after is None
    assert fake_llm.embedded_texts == []


@pytest.mark.parametrize(("retry_after", "expected"), [(3, 3.0), (0.5, 0.5)])
def test_rate_limited_carries_the_servers_retry_after(client, fake_llm, retry_after, expected):
    fake_llm.configure(embedding_fail_rate=1.0, fail_status=429, retry_after=retry_after)
    error = embed_error(OpenAIEmbedder(client, MODEL), ["apple"])
    assert error.code == "embedding_rate_limited"
    assert error.retry_after == expected


def test_the_server_recovering_makes_the_next_call_succeed(client, fake_llm):
    embedder = OpenAIEmbedder(client, MODEL)
    fake_llm.configure(embedding_fail_rate=1.0)
    embed_error(embedder, ["apple"])
    fake_llm.configure(embedding_fail_rate=0.0)
    assert len(embedder.embed(["apple"]).vectors) == 1
    assert (fake_llm.embedding_calls, fake_llm.embedding_failed) == (2, 1)


def test_a_slow_server_is_an_embedding_timeout(fake_llm):
    fake_llm.configure(latency=2.0)
    slow = client_for(fake_llm.base_url, timeout=0.1)
    try:
        error = embed_error(OpenAIEmbedder(slow, MODEL), ["apple"])
    finally:
        slow.close()
    assert error.code == "embedding_timeout"


def test_an_unreachable_server_is_a_generic_embedding_failure():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the call: nothing listens
    unreachable = client_for(f"http://127.0.0.1:{port}/v1", timeout=2.0)
    try:
        error = embed_error(OpenAIEmbedder(unreachable, MODEL), ["apple"])
    finally:
        unreachable.close()
    assert error.code == "embedding_failed"
    assert "APIConnectionError" in str(error)
    assert error.retry_after is None


# --- answers the fake never gives (a stub client) ------------------------------------------------


class StubClient:
    """``client.embeddings.create`` answers ``data`` and ``usage``; records its kwargs."""

    def __init__(self, data: list, usage: object | None) -> None:
        self.requests: list[dict] = []
        self.reply = SimpleNamespace(data=data, usage=usage)
        self.embeddings = SimpleNamespace(create=self._create)

    def _create(self, **kwargs):
        self.requests.append(kwargs)
        return self.reply


def item(index: int, *vector: float) -> SimpleNamespace:
    return SimpleNamespace(index=index, embedding=list(vector))


def test_the_request_carries_the_model_the_texts_and_dimensions_only_when_configured():
    plain = StubClient([item(0, 1.0)], SimpleNamespace(prompt_tokens=1))
    OpenAIEmbedder(plain, "m1").embed(("apple",))
    assert plain.requests == [{"model": "m1", "input": ["apple"]}]
    sized = StubClient([item(0, 1.0)], SimpleNamespace(prompt_tokens=1))
    OpenAIEmbedder(sized, "m2", dimensions=256).embed(["apple"])
    assert sized.requests == [{"model": "m2", "input": ["apple"], "dimensions": 256}]


def test_vectors_answered_out_of_order_are_put_back_in_the_texts_order():
    stub = StubClient([item(2, 3.0), item(0, 1.0), item(1, 2.0)], SimpleNamespace(prompt_tokens=9))
    assert OpenAIEmbedder(stub, MODEL).embed(["a", "b", "c"]).vectors == [[1.0], [2.0], [3.0]]


def test_a_wrong_number_of_vectors_is_an_embedding_error():
    stub = StubClient([item(0, 1.0)], SimpleNamespace(prompt_tokens=2))
    error = embed_error(OpenAIEmbedder(stub, MODEL), ["a", "b"])
    assert error.code == "embedding_failed"
    assert "1 vectors for 2 texts" in str(error)


@pytest.mark.parametrize(
    "usage", [None, SimpleNamespace(prompt_tokens=None), SimpleNamespace(prompt_tokens=0)]
)
def test_without_usage_the_tokens_are_estimated_so_budgets_still_move(usage):
    stub = StubClient([item(0, 1.0), item(1, 1.0)], usage)
    texts = ["an apple a day", "keeps the doctor away"]
    used = OpenAIEmbedder(stub, MODEL).embed(texts).prompt_tokens
    assert used == sum(tokens.count_tokens(t, MODEL) for t in texts) > 0


def test_closing_calls_the_given_close_and_is_optional():
    closed: list[bool] = []
    OpenAIEmbedder(object(), MODEL, close=lambda: closed.append(True)).close()
    OpenAIEmbedder(object(), MODEL).close()
    assert closed == [True]


# --- with the index job and the service ----------------------------------------------------------


def test_an_index_pass_stores_the_servers_vectors_and_vector_search_finds_them(
    client, make_job, seed, search_store, sessions, usage, tenants, fake_redis, keyspace
):
    embedder = OpenAIEmbedder(client, MODEL)
    seed("s1", "the cat sat on the mat", "stock prices fell sharply")
    assert make_job(embedder=embedder).run(TENANT, "s1")[:2] == (Outcome.DONE, None)
    stored = index_state(fake_redis, keyspace, "s1").vectors
    assert stored[1] == pytest.approx(embedding("the cat sat on the mat"), abs=1e-6)
    service = SearchService(search_store, sessions, usage, embedder, exact_vector_limit=100)
    hits = service.retrieve(tenants(TENANT), "s1", "a cat on a mat", k=1, mode="vector")
    assert [h.message["content"] for h in hits] == ["the cat sat on the mat"]
    assert usage.report(TENANT, sessions=1)["llm_calls"]["today"] == 2, "the pass and the query"


def test_a_rate_limited_server_fails_the_pass_no_sooner_than_its_retry_after(
    client, fake_llm, make_job, seed, fake_redis, keyspace
):
    fake_llm.configure(embedding_fail_rate=1.0, fail_status=429, retry_after=45)
    seed("s1", "apple")
    outcome, delay = make_job(embedder=OpenAIEmbedder(client, MODEL)).run(TENANT, "s1")[:2]
    assert outcome == Outcome.FAILED and delay == 45.0
    state = index_state(fake_redis, keyspace, "s1")
    assert (state.failures, state.error, state.indexed_to) == (1, "embedding_rate_limited", 0)
