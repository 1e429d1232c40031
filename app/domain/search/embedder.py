"""Embeddings through the official ``openai`` client: OpenAI, any compatible server
(``OPENAI_BASE_URL``) or Azure (MotorHead's ``AZURE_DEPLOYMENT_ID_ADA``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from app.domain import tokens
from app.domain.retry_after import retry_after_seconds


class EmbeddingError(Exception):
    """The embedding call failed; ``retry_after`` when the server said when to come back."""

    def __init__(
        self, message: str, *, code: str = "embedding_failed", retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Embeddings:
    vectors: list[list[float]]
    prompt_tokens: int


class Embedder(Protocol):
    model: str

    def embed(self, texts: Sequence[str]) -> Embeddings: ...

    def close(self) -> None: ...


class OpenAIEmbedder:
    def __init__(
        self,
        client: Any,
        model: str,
        *,
        dimensions: int | None = None,
        close: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self.model = model
        self._dimensions = dimensions
        self._close = close

    def embed(self, texts: Sequence[str]) -> Embeddings:
        import openai

        extra: dict[str, Any] = {"dimensions": self._dimensions} if self._dimensions else {}
        try:
            response = self._client.embeddings.create(model=self.model, input=list(texts), **extra)
        except openai.RateLimitError as exc:
            raise EmbeddingError(
                "embeddings rate limited", code="embedding_rate_limited", retry_after=retry_after_seconds(exc)
            ) from None
        except openai.APITimeoutError:
            raise EmbeddingError("embedding call timed out", code="embedding_timeout") from None
        except openai.APIStatusError as exc:
            raise EmbeddingError(
                f"embeddings answered {exc.status_code}",
                code="embedding_status",
                retry_after=retry_after_seconds(exc),
            ) from None
        except openai.APIError as exc:
            raise EmbeddingError(f"embedding call failed: {type(exc).__name__}") from None
        data = sorted(response.data, key=lambda item: item.index)
        if len(data) != len(texts):
            raise EmbeddingError(f"embeddings answered {len(data)} vectors for {len(texts)} texts")
        usage = getattr(response, "usage", None)
        used = int(usage.prompt_tokens or 0) if usage is not None else 0
        if not used:  # some compatible servers omit usage: estimate so budgets still move
            used = sum(tokens.count_tokens(text, self.model) for text in texts)
        return Embeddings([list(item.embedding) for item in data], used)

    def close(self) -> None:
        if self._close is not None:
            self._close()
