"""A rate charge that rides in the request's next store round trip.

The web layer opens a ride around a view (``charge_in_store``); the one store call that
can carry it (an append or a read, on a single Redis node) takes it, runs the charge in
its own script or pipeline and records the window it saw. A refused charge raises
``RateLimited`` before anything is written. Nothing is passed through the domain's
signatures: the ride lives in a context variable for the extent of one request.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from app.domain.errors import RateLimited
from app.domain.ratelimit.charge import RateCharge, RateWindow


@dataclass(slots=True)
class Ride:
    charge: RateCharge
    taken: bool = False
    window: RateWindow | None = None

    def record(self, window: RateWindow) -> None:
        """Keep what the charge found; raise ``RateLimited`` when it refused."""
        self.window = window
        if not window.admitted:
            # Retry-After: the web layer raises it to the window's reset.
            raise RateLimited("rate limit exceeded", retry_after=1)


_ride: ContextVar[Ride | None] = ContextVar("recollect_rate_ride", default=None)


@contextmanager
def charge_in_store(charge: RateCharge) -> Iterator[Ride]:
    """Offer ``charge`` to the next store call in this context."""
    ride = Ride(charge)
    token = _ride.set(ride)
    try:
        yield ride
    finally:
        _ride.reset(token)


def take_ride() -> Ride | None:
    """The open ride, once: later calls (a fold started from this request) get ``None``."""
    ride = _ride.get()
    if ride is None or ride.taken:
        return None
    ride.taken = True
    return ride
