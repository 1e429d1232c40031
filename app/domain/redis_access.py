"""How every store talks to Redis: Lua scripts from ``.lua`` files, and Redis outages
turned into the domain's ``StoreUnavailable``."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any, TypeVar

import redis.exceptions
from redis import Redis
from redis.cluster import RedisCluster

from app.domain.errors import StoreUnavailable

# "Redis cannot answer right now": the client may retry shortly.
REDIS_UNAVAILABLE: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ReadOnlyError,
)

Scalar = str | int | float | bytes


def is_cluster(client: Redis) -> bool:
    return isinstance(client, RedisCluster)


def lua_source(package: str, name: str) -> str:
    """The text of ``name`` shipped beside the Python module of ``package``."""
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


class Script:
    """One Lua script, sent as ``EVALSHA``; a ``NOSCRIPT`` answer (Redis restarted or its
    script cache was flushed) is answered here, once, by ``EVAL``, which caches it again.

    ``libraries`` are ``.lua`` files of ``local function`` definitions placed before the
    script's own text, so scripts share code without a second round trip.
    """

    def __init__(self, package: str, name: str, *, libraries: Sequence[tuple[str, str]] = ()) -> None:
        parts = [lua_source(lib_package, lib_name) for lib_package, lib_name in libraries]
        parts.append(lua_source(package, name))
        self.name = name
        self.source = "\n".join(parts)
        self.sha = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()

    def run(self, client: Any, keys: Sequence[str], args: Sequence[Scalar]) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return client.eval(self.source, len(keys), *keys, *args)

    def queue(self, pipe: Any, keys: Sequence[str], args: Sequence[Scalar]) -> None:
        """Add the script to a pipeline; its reply goes through ``settle``. (A redis-py
        ``Script`` on a pipeline would cost a ``SCRIPT EXISTS`` round trip first.)"""
        pipe.evalsha(self.sha, len(keys), *keys, *args)

    def settle(self, reply: Any, client: Any, keys: Sequence[str], args: Sequence[Scalar]) -> Any:
        """A queued run's reply, with ``NOSCRIPT`` answered by running the script alone."""
        if isinstance(reply, redis.exceptions.NoScriptError):
            return self.run(client, keys, args)
        if isinstance(reply, Exception):
            raise reply
        return reply


F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)


def _translating(method: F) -> F:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except REDIS_UNAVAILABLE as exc:
            raise StoreUnavailable(
                "storage is unavailable, retry shortly (a write may have been stored: "
                "retry it with the same Idempotency-Key)",
                cause=type(exc).__name__,
            ) from exc

    return wrapper  # type: ignore[return-value]


def translates_outages(cls: C) -> C:
    """Class decorator for a store: every public method raises ``StoreUnavailable``
    instead of the Redis client's connection, timeout and loading errors."""
    for name, member in list(vars(cls).items()):
        if not name.startswith("_") and callable(member) and not isinstance(member, (staticmethod, type)):
            setattr(cls, name, _translating(member))
    return cls
