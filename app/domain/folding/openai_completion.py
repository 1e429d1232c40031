"""The completion function of ``ChunkedSummarizer`` over the official ``openai`` client."""

from __future__ import annotations

from typing import Any

from app.domain import tokens
from app.domain.folding.summarizer import Completion, SummarizerError
from app.domain.retry_after import retry_after_seconds


def openai_completion(client: Any, *, max_output_tokens: int) -> Completion:
    """A completion function over an ``openai.OpenAI`` / ``AzureOpenAI`` client.

    The client carries its own timeout and (few) retries, honouring ``Retry-After`` on
    429; what still fails becomes a ``SummarizerError`` for the runner's backoff.
    """
    import openai

    def complete(model: str, system: str, user: str) -> tuple[str | None, int, int]:
        try:
            response = client.chat.completions.create(
                model=model,
                messages=[
                    {"role": "system", "content": system},
                    {"role": "user", "content": user},
                ],
                max_tokens=max_output_tokens,
                temperature=0,
            )
        except openai.RateLimitError as exc:
            raise SummarizerError(
                "LLM rate limited", retry_after=retry_after_seconds(exc), code="llm_rate_limited"
            ) from None
        except openai.APITimeoutError:
            raise SummarizerError("LLM call timed out", code="llm_timeout") from None
        except openai.APIStatusError as exc:
            raise SummarizerError(
                f"LLM answered {exc.status_code}",
                retry_after=retry_after_seconds(exc),
                code="llm_status",
            ) from None
        except openai.APIError as exc:
            raise SummarizerError(f"LLM call failed: {type(exc).__name__}") from None
        answer = response.choices[0].message.content if response.choices else None
        usage = response.usage
        if usage is not None:
            return answer, int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0)
        # Some compatible servers omit usage: estimate so budgets still move.
        estimate = tokens.count_tokens(system, model) + tokens.count_tokens(user, model) + 7
        return answer, estimate, tokens.count_tokens(answer or "", model)

    return complete
