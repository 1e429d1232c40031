"""The circuit breaker: one proof that Redis is down makes every other call fail at once,
a stale connection after a restart proves nothing, and the breaker closes by itself."""

from __future__ import annotations

import signal
import time

import pytest
import redis

from app.extensions import fast_retry
from app.redis_breaker import RedisBreaker, RedisUnavailable
from tests.conftest import free_port

TIMEOUT = 0.5


def guarded_client(url: str, breaker: RedisBreaker) -> redis.Redis:
    pool = breaker.pool(
        url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, retry=fast_retry(), max_connections=4
    )
    return redis.Redis(connection_pool=pool)


def test_a_hung_redis_costs_one_timeout_then_every_call_fails_at_once(private_redis):
    breaker = RedisBreaker(open_seconds=5)
    client = guarded_client(private_redis.url, breaker)
    assert client.ping()
    private_redis.process.send_signal(signal.SIGSTOP)

    started = time.monotonic()
    with pytest.raises(redis.exceptions.ConnectionError):
        client.ping()
    # One socket timeout, not two: the retry met the open breaker instead of waiting again.
    assert TIMEOUT <= time.monotonic() - started < 2 * TIMEOUT
    assert breaker.is_open

    started = time.monotonic()
    with pytest.raises(RedisUnavailable):
        client.set("k", "v")
    assert time.monotonic() - started < TIMEOUT / 2


def test_the_breaker_closes_by_itself_and_the_next_call_tries_again(private_redis):
    breaker = RedisBreaker(open_seconds=0.3)
    client = guarded_client(private_redis.url, breaker)
    client.ping()
    private_redis.process.send_signal(signal.SIGSTOP)
    with pytest.raises(redis.exceptions.ConnectionError):
        client.ping()
    private_redis.process.send_signal(signal.SIGCONT)
    with pytest.raises(RedisUnavailable):
        client.ping()
    time.sleep(0.35)
    assert not breaker.is_open
    assert client.ping()


def test_a_restart_does_not_open_the_breaker(private_redis):
    """Every pooled connection is stale once after a restart; the quick retry on a fresh
    connection succeeds and must not be preceded by a fail-fast window."""
    breaker = RedisBreaker(open_seconds=5)
    client = guarded_client(private_redis.url, breaker)
    client.set("k", "before")
    private_redis.stop()
    private_redis.start()
    assert client.set("k", "after")
    assert not breaker.is_open


def test_a_refused_connection_opens_the_breaker():
    breaker = RedisBreaker(open_seconds=5)
    client = guarded_client(f"redis://127.0.0.1:{free_port()}/0", breaker)
    assert not breaker.is_open
    with pytest.raises(redis.exceptions.ConnectionError):
        client.ping()
    assert breaker.is_open
    with pytest.raises(RedisUnavailable):
        client.ping()


def test_clients_sharing_a_breaker_fail_together(private_redis):
    """The store's and the rate limiter's pools share the app's breaker: once one of them
    met the hang, the other does not spend a timeout of its own."""
    breaker = RedisBreaker(open_seconds=5)
    store, limiter = guarded_client(private_redis.url, breaker), guarded_client(private_redis.url, breaker)
    store.ping(), limiter.ping()
    private_redis.process.send_signal(signal.SIGSTOP)
    with pytest.raises(redis.exceptions.ConnectionError):
        store.ping()
    started = time.monotonic()
    with pytest.raises(RedisUnavailable):
        limiter.incr("hits")
    assert time.monotonic() - started < TIMEOUT / 2


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("redis://127.0.0.1:6390/0", redis.connection.Connection),
        ("rediss://127.0.0.1:6390/0", redis.connection.SSLConnection),
        ("unix:///tmp/redis.sock", redis.connection.UnixDomainSocketConnection),
    ],
)
def test_the_guard_keeps_the_connection_kind_the_url_asks_for(url, base):
    pool = RedisBreaker().pool(url)
    assert issubclass(pool.connection_class, base)
    assert pool.connection_class is not base
