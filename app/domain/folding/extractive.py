"""A summarizer without an LLM."""

from __future__ import annotations

import re
from collections.abc import Sequence

from app.domain.folding.summarizer import Line, SummaryResult


class ExtractiveSummarizer:
    """No LLM: keeps the first sentence of each line, newest kept when over the bound.

    Deterministic and free, so the embedded quick start summarizes too. The summary never
    exceeds ``max_chars``; what no longer fits is counted in a leading note instead.
    """

    name = "extractive"
    _OMITTED = re.compile(r"^\(\d+ earlier lines omitted\)\n")

    def __init__(self, *, max_chars: int = 2000, line_chars: int = 160) -> None:
        self.max_chars = max_chars
        self.line_chars = line_chars

    def _gist(self, line: Line) -> str:
        text = " ".join(line.content.split())
        match = re.match(r"(.+?[.!?])(\s|$)", text)
        sentence = match.group(1) if match else text
        if len(sentence) > self.line_chars:
            sentence = sentence[: self.line_chars - 1].rstrip() + "…"
        return f"{line.role}: {sentence}"

    def summarize(
        self,
        previous: str | None,
        lines: Sequence[Line],
        *,
        model: str,
        prompt: str | None = None,
    ) -> SummaryResult:
        omitted = 0
        body = previous or ""
        note = self._OMITTED.match(body)
        if note:
            omitted = int(note.group(0).split()[0][1:])
            body = body[note.end() :]
        entries = [e for e in body.split("\n") if e]
        entries += [self._gist(line) for line in lines if line.content.strip()]
        while entries:
            header = f"({omitted} earlier lines omitted)\n" if omitted else ""
            text = header + "\n".join(entries)
            if len(text) <= self.max_chars:
                break
            entries.pop(0)
            omitted += 1
        else:
            text = f"({omitted} earlier lines omitted)" if omitted else ""
        summary = text or None
        return SummaryResult(summary=summary if summary != previous else None)
