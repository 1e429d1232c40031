"""The summarizer and the embedder this process uses, built from the settings after fork
(an OpenAI or Azure client holds connections)."""

from __future__ import annotations

from app.domain.folding.extractive import ExtractiveSummarizer
from app.domain.folding.openai_completion import openai_completion
from app.domain.folding.summarizer import ChunkedSummarizer, Summarizer
from app.domain.search.embedder import Embedder, OpenAIEmbedder
from config import Settings


def build_summarizer(settings: Settings) -> Summarizer:
    if settings.effective_summarizer == "extractive":
        return ExtractiveSummarizer()
    import openai

    timeout = settings.llm_timeout_seconds
    if settings.azure_configured:
        client = openai.AzureOpenAI(
            api_key=settings.azure_api_key.get_secret_value(),  # type: ignore[union-attr]
            azure_endpoint=settings.azure_api_base,
            azure_deployment=settings.azure_deployment_id,
            api_version=settings.azure_api_version,
            timeout=timeout,
            max_retries=settings.llm_max_retries,
        )
    else:
        client = openai.OpenAI(
            api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else "none",
            base_url=settings.openai_base_url,
            timeout=timeout,
            max_retries=settings.llm_max_retries,
        )
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
    import openai

    timeout = settings.llm_timeout_seconds
    if settings.azure_configured:
        client = openai.AzureOpenAI(
            api_key=settings.azure_api_key.get_secret_value(),  # type: ignore[union-attr]
            azure_endpoint=settings.azure_api_base,
            azure_deployment=settings.azure_deployment_id_ada,
            api_version=settings.azure_api_version,
            timeout=timeout,
            max_retries=settings.llm_max_retries,
        )
        model = settings.embedding_model or settings.azure_deployment_id_ada or "text-embedding-ada-002"
    else:
        client = openai.OpenAI(
            api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else "none",
            base_url=settings.openai_base_url,
            timeout=timeout,
            max_retries=settings.llm_max_retries,
        )
        model = settings.embedding_model or "text-embedding-3-small"
    return OpenAIEmbedder(client, model, dimensions=settings.embedding_dimensions, close=client.close)
