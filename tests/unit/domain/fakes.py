"""Fakes shared by the domain's unit tests."""

from __future__ import annotations

from app.domain.scheduling.outcome import JobObserver
from app.domain.tenancy.authentication import Principal
from app.domain.tenancy.policy import EffectivePolicy


class RecordingObserver(JobObserver):
    def __init__(self) -> None:
        self.outcomes: list[str] = []
        self.running_deltas: list[int] = []
        self.llm_calls: list[tuple[str, int, int]] = []

    def outcome(self, name: str) -> None:
        self.outcomes.append(name)

    def running(self, delta: int) -> None:
        self.running_deltas.append(delta)

    def llm(self, tenant_id: str, seconds: float, prompt_tokens: int, completion_tokens: int) -> None:
        self.llm_calls.append((tenant_id, prompt_tokens, completion_tokens))


class Tenants:
    """``principal_for``: a tenant id → its Principal, ``None`` once removed."""

    def __init__(self) -> None:
        self.principals: dict[str, Principal] = {}

    def add(self, tenant_id: str, policy: EffectivePolicy) -> None:
        self.principals[tenant_id] = Principal(tenant_id, None, policy)

    def remove(self, tenant_id: str) -> None:
        del self.principals[tenant_id]

    def __call__(self, tenant_id: str) -> Principal | None:
        return self.principals.get(tenant_id)
