"""Claiming a session's fold: the due-set step that decides which process folds it.

A session whose window overflows is marked due in the ``due`` sorted set (score: when its
fold may run). A process with a free fold slot claims it by pushing the score to the end
of a lease, then folds it; one without a free slot leaves the mark for a sweeper. The same
Lua (``claim_fold.lua``) runs on its own (``DueSet.claim``) and, on a single Redis node,
inside the append script, so an overflowing POST costs no extra round trip. At the end of
a run, ``settle_due.lua`` drops the mark (or makes it due again) inside the job's finishing
script, on a single node.
"""

from __future__ import annotations

from dataclasses import dataclass

# claim_fold(due_key, member, now, lease_until, has_slot), for scripts that claim inline.
CLAIM_LIBRARY = (__package__, "claim_fold.lua")
# settle_due(due_key, member, now, status, more_due), for the scripts that finish a job.
SETTLE_LIBRARY = (__package__, "settle_due.lua")


@dataclass(frozen=True, slots=True)
class FoldClaim:
    """What a claim needs: the due member, the time, the lease's end, and whether this
    process has a free fold slot for it (without one it only marks the session due)."""

    member: str
    now: float
    lease_until: float
    has_slot: bool

    @property
    def args(self) -> list[str | float]:
        """claim_fold's arguments after the due key, in its order."""
        return [self.member, self.now, self.lease_until, "1" if self.has_slot else "0"]
