"""The rate limiter's storage: limits' own decisions and window arithmetic, with the
header read answered by the acquire that preceded it — one script run per request."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from limits import parse
from limits.storage import RedisStorage, storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from app.rate_limits.storage import OneTripRedisStorage


@pytest.fixture
def single_node_url(redis_url: str) -> str:
    if not redis_url.startswith("redis://"):
        pytest.skip("the one-trip storage serves single-node Redis (cluster keeps limits' own)")
    return redis_url


def one_trip_limiter(url: str) -> SlidingWindowCounterRateLimiter:
    return SlidingWindowCounterRateLimiter(storage_from_string(OneTripRedisStorage.uri_for(url)))


def evalsha_calls(client: redis.Redis) -> int:
    return client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)


def test_the_scheme_selects_the_storage(single_node_url):
    storage = storage_from_string(OneTripRedisStorage.uri_for(single_node_url))
    assert isinstance(storage, OneTripRedisStorage)
    assert OneTripRedisStorage.uri_for("unix:///run/redis.sock") is None


def test_decisions_and_headers_match_limits_own_storage(single_node_url):
    ours = one_trip_limiter(single_node_url)
    theirs = SlidingWindowCounterRateLimiter(RedisStorage(single_node_url, key_prefix="reference"))
    item = parse("5/minute")
    for request in range(8):
        assert ours.hit(item, "tenant") == theirs.hit(item, "tenant"), request
        (our_reset, our_remaining) = ours.get_window_stats(item, "tenant")
        (their_reset, their_remaining) = theirs.get_window_stats(item, "tenant")
        assert our_remaining == their_remaining == max(0, 4 - request)
        # limits computes the reset as ``ttl % expiry``: a read in the very millisecond a
        # counter was created sees ttl == 2 * expiry exactly and wraps to 0. Equal modulo the
        # window, then, and otherwise within a second.
        drift = (our_reset - their_reset) % 60
        assert min(drift, 60 - drift) < 1.0


def test_a_hit_and_its_header_read_cost_one_script_run(single_node_url):
    client = redis.Redis.from_url(single_node_url)
    limiter = one_trip_limiter(single_node_url)
    item = parse("100/second")
    limiter.hit(item, "warm-up")  # loads the script (EVALSHA then SCRIPT LOAD + EVALSHA)
    limiter.get_window_stats(item, "warm-up")
    before = evalsha_calls(client)
    limiter.hit(item, "tenant")
    limiter.get_window_stats(item, "tenant")
    assert evalsha_calls(client) - before == 1
    # A second read has no acquire to reuse: it asks Redis, and sees other hits.
    limiter.hit(item, "tenant")
    limiter.get_window_stats(item, "tenant")
    SlidingWindowCounterRateLimiter(RedisStorage(single_node_url)).hit(item, "tenant")
    assert limiter.get_window_stats(item, "tenant")[1] == 100 - 3
    # hit + its read (1), hit + its read (1), the other client's hit (1), the fresh read (1)
    assert evalsha_calls(client) - before == 4


def test_a_hit_in_one_thread_never_answers_a_read_in_another(single_node_url):
    client = redis.Redis.from_url(single_node_url)
    limiter = one_trip_limiter(single_node_url)
    item = parse("10/minute")
    limiter.get_window_stats(item, "warm-up")
    limiter.hit(item, "tenant")
    before = evalsha_calls(client)
    other_read = []
    other = threading.Thread(target=lambda: other_read.append(limiter.get_window_stats(item, "tenant")[1]))
    other.start()
    other.join()
    assert other_read == [9]
    assert evalsha_calls(client) - before == 1  # the other thread asked Redis
    assert limiter.get_window_stats(item, "tenant")[1] == 9
    assert evalsha_calls(client) - before == 1  # this thread's read was its hit's answer


def test_a_refused_hit_still_reports_the_window(single_node_url):
    limiter = one_trip_limiter(single_node_url)
    item = parse("2/minute")
    assert limiter.hit(item, "tenant") and limiter.hit(item, "tenant")
    assert not limiter.hit(item, "tenant")
    reset, remaining = limiter.get_window_stats(item, "tenant")
    assert remaining == 0
    assert time.time() < reset <= time.time() + 120
