"""The summarizer and the embedder this process uses, built from the settings after fork
(an OpenAI or Azure client holds connections)."""

from __future__ import annotations

from typing import Any

from app.domain.folding.extractive import ExtractiveSummarizer
from app.domain.folding.openai_completion import openai_completion
from app.domain.folding.summarizer import ChunkedSummarizer, Summarizer
from app.domain.search.embedder import Embedder, OpenAIEmbedder
from config import Settings


def openai_client(settings: Settings, *, azure_deployment: str | None) -> Any:
    """An ``openai.OpenAI`` client — or, with MotorHead's four Azure variables set, an
    ``AzureOpenAI`` client for ``azure_deployment`` — with explicit timeout and retries."""
    import openai

    common = {"timeout": settings.llm_timeout_seconds, "max_retries": settings.llm_max_retries}
    if settings.azure_configured:
        return openai.AzureOpenAI(
            api_key=settings.azure_api_key.get_secret_value(),  # type: ignore[union-attr]
            azure_endpoint=settings.azure_api_base,
            azure_deployment=azure_deployment,
            api_version=settings.azure_api_version,
            **common,
        )
    return openai.OpenAI(
        api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else "none",
        base_url=settings.openai_base_url,
        **common,
    )


def build_summarizer(settings: Settings) -> Summarizer:
    if settings.effective_summarizer == "extractive":
        return ExtractiveSummarizer()
    client = openai_client(settings, azure_deployment=settings.azure_deployment_id)
    return ChunkedSummarizer(
        complete=openai_completion(client, max_output_tokens=settings.summary_max_tokens),
        context_tokens=settings.summary_context_tokens,
        max_output_tokens=settings.summary_max_tokens,
        close=client.close,
    )


def build_embedder(settings: Settings) -> Embedder | None:
    """None when embeddings are not configured: search is keyword-only then."""
    if not settings.embeddings_configured:
        return None
    client = openai_client(settings, azure_deployment=settings.azure_deployment_id_ada)
    if settings.azure_configured:
        model = settings.embedding_model or settings.azure_deployment_id_ada or "text-embedding-ada-002"
    else:
        model = settings.embedding_model or "text-embedding-3-small"
    return OpenAIEmbedder(client, model, dimensions=settings.embedding_dimensions, close=client.close)
