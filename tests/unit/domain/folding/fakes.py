"""Test doubles and helpers shared by the fold tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.domain.folding.store import FoldingStore
from app.domain.folding.summarizer import Line, SummarizerError, SummaryResult
from tests.unit.domain.fakes import RecordingObserver, Tenants  # noqa: F401 - re-exported

TENANT = "acme"
MESSAGE_TOKENS = 10


@dataclass(frozen=True)
class SummarizeCall:
    previous: str | None
    lines: list[Line]
    model: str
    prompt: str | None


class FakeSummarizer:
    """Records calls; can fail, block on an event, or run a hook inside the call."""

    name = "fake"

    def __init__(self) -> None:
        self.calls: list[SummarizeCall] = []
        self.error: SummarizerError | None = None
        self.gate: threading.Event | None = None  # when set: wait for it inside the call
        self.entered = threading.Event()
        self.during: Callable[[], None] | None = None  # runs inside the call, once
        self.prompt_tokens = 30
        self.completion_tokens = 5

    def summarize(
        self, previous: str | None, lines: Sequence[Line], *, model: str, prompt: str | None = None
    ) -> SummaryResult:
        self.calls.append(SummarizeCall(previous, list(lines), model, prompt))
        self.entered.set()
        if self.during is not None:
            hook, self.during = self.during, None
            hook()
        if self.gate is not None:
            assert self.gate.wait(5), "the test never opened the summarizer's gate"
        if self.error is not None:
            raise self.error
        text = ",".join(line.content for line in lines)
        return SummaryResult(
            summary=f"{previous}+{text}" if previous else text,
            calls=1,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
        )


def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return bool(predicate())


def window_ids(fold_store: FoldingStore, session_id: str, tenant_id: str = TENANT) -> list[int]:
    return [int(m["id"]) for m in fold_store.fold_state(tenant_id, session_id).messages]
