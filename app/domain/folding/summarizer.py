"""Summarizers: fold new conversation lines into a running summary.

Incremental by construction: every call sends the previous summary plus only the new lines,
never the conversation from scratch, so each message is paid for once. A backlog too big
for one call is cut into chunks that each fit the model's context and folded in sequence,
each chunk's answer becoming the next chunk's "previous summary".

Two implementations share the ``Summarizer`` protocol: ``ChunkedSummarizer`` around a
completion function (``openai_completion``: OpenAI, any compatible server, or Azure) and
``extractive.ExtractiveSummarizer`` (no LLM; deterministic, bounded).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from app.domain import tokens

# Deliberately short: it is sent with every fold, so each token here is paid ~once per
# window_size/2 messages. The summary and the lines go in the user message.
DEFAULT_PROMPT = (
    "You maintain a running summary of a conversation. Merge the new lines into the "
    "current summary and reply with the updated summary only: concise, factual, in the "
    "conversation's language, keeping names, numbers, decisions and open questions. "
    "If the new lines add nothing worth remembering, reply NONE."
)

# Answers meaning "nothing to add": the previous summary stays (the lines still count as
# folded) and ``context`` is never the literal "NONE".
_NONE_ANSWER = re.compile(r"^\W*(none|n/a|nothing( new)?( to add)?)\W*$", re.IGNORECASE)

_TRUNCATION_MARK = " […] "


@dataclass(frozen=True, slots=True)
class Line:
    role: str
    content: str

    def render(self) -> str:
        return f"{self.role}: {self.content}"


@dataclass(slots=True)
class SummaryResult:
    """The new summary (``None``: keep the previous one) and what producing it cost."""

    summary: str | None
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Summarizer(Protocol):
    name: str

    def summarize(
        self,
        previous: str | None,
        lines: Sequence[Line],
        *,
        model: str,
        prompt: str | None = None,
    ) -> SummaryResult: ...


class SummarizerError(Exception):
    """A summarization attempt failed; ``retry_after`` is the server's hint in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, code: str = "llm_error"):
        super().__init__(message)
        self.retry_after = retry_after
        self.code = code


def clean_answer(answer: str | None) -> str | None:
    """``None`` for an empty or NONE-like answer, else the stripped text."""
    if answer is None:
        return None
    text = answer.strip()
    if not text or _NONE_ANSWER.match(text):
        return None
    return text


def build_user_message(previous: str | None, rendered_lines: Sequence[str]) -> str:
    return (
        f"Current summary:\n{previous or '(empty)'}\n\n"
        f"New lines of conversation:\n" + "\n".join(rendered_lines) + "\n\nNew summary:"
    )


def truncate_to_tokens(text: str, limit: int, model: str | None) -> str:
    """Keep the head and tail of a line too long for any single call.

    Never silently dropped: an oversized message is still folded, shortened visibly.
    """
    if tokens.count_tokens(text, model) <= limit:
        return text
    keep_chars = max(16, limit * 3)  # ~3+ characters per token in practice
    while keep_chars > 16:
        head, tail = text[: keep_chars // 2], text[-keep_chars // 2 :]
        candidate = head + _TRUNCATION_MARK + tail
        if tokens.count_tokens(candidate, model) <= limit:
            return candidate
        keep_chars = int(keep_chars * 0.8)
    return text[:16] + _TRUNCATION_MARK


def chunk_lines(
    lines: Sequence[Line],
    *,
    budget_tokens: int,
    model: str | None,
) -> list[list[str]]:
    """Greedy packing of rendered lines, in order, into chunks of at most ``budget_tokens``."""
    chunks: list[list[str]] = []
    current: list[str] = []
    used = 0
    for line in lines:
        rendered = truncate_to_tokens(line.render(), budget_tokens, model)
        cost = tokens.count_tokens(rendered, model) + 1  # +1 for the newline
        if current and used + cost > budget_tokens:
            chunks.append(current)
            current, used = [], 0
        current.append(rendered)
        used += cost
    if current:
        chunks.append(current)
    return chunks


Completion = Callable[[str, str, str], tuple[str | None, int, int]]


@dataclass
class ChunkedSummarizer:
    """The incremental, chunked fold loop around one completion function."""

    complete: Completion  # (model, system prompt, user message) -> (answer, prompt, completion)
    context_tokens: int = 8192
    max_output_tokens: int = 512
    name: str = "openai"
    close: Callable[[], None] | None = None  # releases the client's connections
    _overhead: int = field(default=64, repr=False)

    def summarize(
        self,
        previous: str | None,
        lines: Sequence[Line],
        *,
        model: str,
        prompt: str | None = None,
    ) -> SummaryResult:
        system = prompt or DEFAULT_PROMPT
        result = SummaryResult(summary=None)
        current = previous
        fixed = tokens.count_tokens(system, model) + self.max_output_tokens + self._overhead
        # The previous summary can be up to max_output_tokens long; reserve room for it.
        budget = max(256, self.context_tokens - fixed - self.max_output_tokens)
        for chunk in chunk_lines(lines, budget_tokens=budget, model=model):
            answer, prompt_tokens, completion_tokens = self.complete(
                model, system, build_user_message(current, chunk)
            )
            result.calls += 1
            result.prompt_tokens += prompt_tokens
            result.completion_tokens += completion_tokens
            cleaned = clean_answer(answer)
            if cleaned is not None:
                current = cleaned
        result.summary = current if current != previous else None
        return result
