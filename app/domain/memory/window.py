"""The window policy: which messages leave the window, as a pure function.

When the window holds more than ``window_size`` messages, or more than ``window_tokens``
tokens, the oldest messages are folded until ``window_size // 2`` remain and the rest fit in
half the token budget — the same halving MotorHead and Zep use, so a fold happens about
once every ``window_size / 2`` messages instead of on every append.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class FoldPlan:
    messages: list[dict[str, Any]]

    @property
    def ids(self) -> list[int]:
        return [int(m["id"]) for m in self.messages]

    @property
    def tokens(self) -> int:
        return sum(int(m.get("token_count", 0)) for m in self.messages)


def overflows(length: int, tokens: int, *, window_size: int, window_tokens: int | None) -> bool:
    """True when a window of ``length`` messages and ``tokens`` tokens must be folded."""
    return length > window_size or (window_tokens is not None and tokens > window_tokens)


def plan_fold(
    window: Sequence[dict[str, Any]], *, window_size: int, window_tokens: int | None
) -> FoldPlan | None:
    """The oldest messages to fold, oldest first; ``None`` when the window is within policy.

    At least one message (the newest) always stays, so a client never reads an empty
    window right after writing.
    """
    total = sum(int(m.get("token_count", 0)) for m in window)
    if not overflows(len(window), total, window_size=window_size, window_tokens=window_tokens):
        return None
    fold = max(0, len(window) - window_size // 2)
    if window_tokens is not None:
        kept = sum(int(m.get("token_count", 0)) for m in window[fold:])
        while kept > window_tokens // 2 and fold < len(window) - 1:
            kept -= int(window[fold].get("token_count", 0))
            fold += 1
    fold = min(fold, len(window) - 1)
    return FoldPlan(list(window[:fold])) if fold > 0 else None
