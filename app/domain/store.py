"""The session store: every Redis command on session data, and every script.

A session is four keys in one hash tag (see ``keyspace``):

* window ``:w`` — a list, oldest first, of the messages not yet folded into the summary.
  Each element is the message's API representation as compact JSON with short keys,
  ``{"id":<n>,"r":…,"c":…,"t":…,"n":…[,"metadata":…]}`` (28 bytes a message less in Redis
  than the API's key names); reads restore the API's names by replacing bytes, without
  parsing (``api_message``), and scripts read the id with one pattern match. Elements
  written before the short keys (``"role"`` after the id) are passed through as they are.
* meta ``:m`` — a hash: ``next`` (last id given), ``gen`` (a nonce set when the session is
  created, so a fold that started before a DELETE can never write into the session that a
  later POST recreates), ``sum`` (summary), ``tok`` (LLM tokens spent), ``wm`` (watermark:
  the last folded id), ``folded``, ``wt`` (tokens in the window), ``crt``/``upd``.
* idempotency ``:i`` — a hash of Idempotency-Key digest → ``"<ms>:<first id>:<last id>"``.
* lock ``:l`` — the summarization lock (see ``jobs``).

Writes that must be atomic are Lua scripts; on Redis Cluster they touch only these keys.
On a single node the append script also does the tenant-wide bookkeeping (session index,
usage count) and charges the rate limits it is given, so a POST is one round trip; a GET
is one pipeline with its rate charge in front. On Cluster the bookkeeping follows in a
second round trip and flask-limiter charges the limits itself.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis import Redis
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError

from app.domain.foldclaim import CLAIM_FOLD_LUA, FoldClaim
from app.domain.keyspace import Keyspace
from app.domain.ratelimit import CHARGE_LIMITS_LUA, CHARGE_SCRIPT, RateCharge, RateWindow

IDEMPOTENCY_SECONDS = 24 * 3600

_APPEND = CHARGE_LIMITS_LUA + CLAIM_FOLD_LUA + """
-- KEYS: window, meta, idem; on a single node also the tenant's session index, its usage
--       hash, the due set, then the rate charge's keys (two per limit).
-- ARGV: now_ms, ttl_s, gen ('' = only an existing session may be appended to: the
--       tenant is at its session quota), idem_digest|'', context|'', has_context(0/1),
--       tokens_sum, session_id, utc_day,
--       fold claim: due member|'' (no claim here), now, lease_until, has_slot(0/1),
--       window_size, window_tokens|'' (when the window overflows these — the test of
--       window.overflows — claim),
--       limits (how many rate limits to charge), 3 numbers per limit, payload1..n
-- Returns {first, last, window length, created, replayed, window tokens, refused, claimed,
--          then the rate window: admitted, index, previous/current count and ttl}.
-- A request the rate limits refuse changes nothing but their counters.
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local limits = tonumber(ARGV[16])
local rate = {1, 0, 0, 0, 0, 0}
if limits > 0 then
  rate = charge_limits(7, 17, limits)
  if rate[1] == 0 then return {0, 0, 0, 0, 0, 0, 0, 0, unpack(rate)} end
end
if ARGV[3] == '' and redis.call('HEXISTS', KEYS[2], 'gen') == 0 then
  return {0, 0, 0, 0, 0, 0, 1, 0, unpack(rate)}
end
if ARGV[4] ~= '' then
  local seen = redis.call('HGET', KEYS[3], ARGV[4])
  if seen then
    local ts, first, last = string.match(seen, '^(%d+):(%d+):(%d+)$')
    if ts and now - tonumber(ts) < 86400000 then
      return {tonumber(first), tonumber(last), redis.call('LLEN', KEYS[1]), 0, 1,
              tonumber(redis.call('HGET', KEYS[2], 'wt') or '0'), 0, 0, unpack(rate)}
    end
  end
end
local p = 16 + 3 * limits
local n = #ARGV - p
local created = redis.call('HSETNX', KEYS[2], 'gen', ARGV[3])
if created == 1 then redis.call('HSET', KEYS[2], 'crt', now) end
local last = redis.call('HINCRBY', KEYS[2], 'next', n)
local first = last - n + 1
if n > 0 then
  local items = {}
  for i = 1, n do items[i] = '{"id":' .. (first + i - 1) .. ',' .. ARGV[p + i] end
  redis.call('RPUSH', KEYS[1], unpack(items))
  redis.call('HINCRBY', KEYS[2], 'wt', tonumber(ARGV[7]))
end
if ARGV[6] == '1' then redis.call('HSET', KEYS[2], 'sum', ARGV[5]) end
redis.call('HSET', KEYS[2], 'upd', now)
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[4], now .. ':' .. first .. ':' .. last)
  -- Keep the record bounded: drop entries past their 24 h once the hash grows.
  if redis.call('HLEN', KEYS[3]) > 256 then
    local all = redis.call('HGETALL', KEYS[3])
    for i = 1, #all, 2 do
      local ts = tonumber(string.match(all[i + 1], '^(%d+):'))
      if ts and now - ts >= 86400000 then redis.call('HDEL', KEYS[3], all[i]) end
    end
  end
  local idem_ttl = 86400
  if ttl > 0 and ttl < idem_ttl then idem_ttl = ttl end
  redis.call('EXPIRE', KEYS[3], idem_ttl)
end
for i = 1, 2 do
  if ttl > 0 then redis.call('EXPIRE', KEYS[i], ttl) else redis.call('PERSIST', KEYS[i]) end
end
local length = redis.call('LLEN', KEYS[1])
local window_tokens = tonumber(redis.call('HGET', KEYS[2], 'wt') or '0')
local claimed = 0
if #KEYS >= 6 then
  if ARGV[3] == '' then
    redis.call('ZADD', KEYS[4], 'XX', now, ARGV[8])
  else
    redis.call('ZADD', KEYS[4], now, ARGV[8])
  end
  if n > 0 then
    redis.call('HINCRBY', KEYS[5], 'messages', n)
    redis.call('HINCRBY', KEYS[5], 'messages:' .. ARGV[9], n)
  end
  if ARGV[10] ~= '' and (length > tonumber(ARGV[14])
      or (ARGV[15] ~= '' and window_tokens > tonumber(ARGV[15]))) then
    claimed = claim_fold(KEYS[6], ARGV[10], ARGV[11], ARGV[12], ARGV[13])
  end
end
return {first, last, length, created, 0, window_tokens, 0, claimed, unpack(rate)}
"""

_DELETE_MESSAGE = """
-- KEYS: window, meta. ARGV: message id. Returns the removed element or false.
local wanted = ARGV[1]
local items = redis.call('LRANGE', KEYS[1], 0, -1)
for i = 1, #items do
  if string.match(items[i], '^{"id":(%d+),') == wanted then
    redis.call('LREM', KEYS[1], 1, items[i])
    local tk
    if string.match(items[i], '^{"id":%d+,"r":"') then
      tk = tonumber(string.match(items[i], ',"n":(%d+)[,}]')) or 0
    else  -- written before the short keys
      tk = tonumber(string.match(items[i], '"token_count":(%d+)[,}]')) or 0
    end
    redis.call('HINCRBY', KEYS[2], 'wt', -tk)
    return items[i]
  end
end
return false
"""

_COMMIT_FOLD = """
-- KEYS: window, meta, lock.
-- ARGV: lock_token, gen, expected_watermark, tokens_spent, keep_summary(0/1), summary,
--       folded_tokens, id1..idn (the folded ids, oldest first)
-- Returns 1 on commit, or an error word: 'lock', 'gone', 'moved', 'changed'.
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 'lock' end
if redis.call('HGET', KEYS[2], 'gen') ~= ARGV[2] then return 'gone' end
local wm = redis.call('HGET', KEYS[2], 'wm') or '0'
if wm ~= ARGV[3] then return 'moved' end
local n = #ARGV - 7
local head = redis.call('LRANGE', KEYS[1], 0, n - 1)
if #head ~= n then return 'changed' end
for i = 1, n do
  -- A folded message deleted meanwhile would otherwise live on inside the summary.
  if string.match(head[i], '^{"id":(%d+),') ~= ARGV[7 + i] then return 'changed' end
end
redis.call('LTRIM', KEYS[1], n, -1)
if ARGV[5] == '0' then redis.call('HSET', KEYS[2], 'sum', ARGV[6]) end
redis.call('HSET', KEYS[2], 'wm', ARGV[7 + n])
redis.call('HINCRBY', KEYS[2], 'folded', n)
redis.call('HINCRBY', KEYS[2], 'tok', tonumber(ARGV[4]))
redis.call('HINCRBY', KEYS[2], 'wt', -tonumber(ARGV[7]))
return 1
"""

_ADD_TOKENS = """
-- Tokens spent on a fold that could not commit still count (they were billed).
if redis.call('HGET', KEYS[1], 'gen') == ARGV[1] then
  redis.call('HINCRBY', KEYS[1], 'tok', tonumber(ARGV[2]))
end
return 0
"""


# The last day and second formatted, reused: every append formats both, and strftime is a
# measurable part of an append's CPU. (A tuple is replaced whole, so threads never see half.)
_last_day: tuple[int, str] = (-1, "")
_last_second: tuple[int, str] = (-1, "")


def utc_day(ms: int | None = None) -> str:
    """The UTC day (``YYYY-MM-DD``) that usage counters and daily budgets are kept by."""
    global _last_day
    if ms is None:
        ms = int(time.time() * 1000)
    day = ms // 86_400_000
    cached = _last_day
    if cached[0] != day:
        cached = _last_day = (day, time.strftime("%Y-%m-%d", time.gmtime(day * 86_400)))
    return cached[1]


def utc_iso(ms: int) -> str:
    """``2026-11-24T16:19:56.123Z``: the API's timestamp form."""
    global _last_second
    second, millis = divmod(ms, 1000)
    cached = _last_second
    if cached[0] != second:
        cached = _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{millis:03d}Z"


# Short stored key → the API's, each with the bytes around it that only a key can have: a
# string value holds a quote only escaped, so before any metadata (always last) the first
# match of each is the key itself.
_API_KEYS = (
    (b',"r":"', b',"role":"'),
    (b',"c":"', b',"content":"'),
    (b',"t":"', b',"created_at":"'),
    (b',"n":', b',"token_count":'),
)


def api_message(stored: bytes) -> bytes:
    """A stored window element as the API's JSON (elements from before the short keys
    already are)."""
    comma = stored.find(b",")
    if not stored.startswith(b'"r":"', comma + 1):
        return stored
    for short, name in _API_KEYS:
        stored = stored.replace(short, name, 1)
    return stored


@dataclass(frozen=True, slots=True)
class NewMessage:
    role: str
    content: str
    metadata: dict[str, Any] | None
    token_count: int


@dataclass(frozen=True, slots=True)
class AppendResult:
    first_id: int
    last_id: int
    window_length: int
    created: bool
    replayed: bool
    window_tokens: int
    refused: bool = False  # a new session, but the tenant is at its session quota
    rate: RateWindow | None = None  # when the append was charged to rate limits
    fold_claimed: bool | None = None  # None: no fold claim was attempted in the script

    @property
    def rate_limited(self) -> bool:
        return self.rate is not None and not self.rate.admitted

    @property
    def ids(self) -> list[int]:
        return list(range(self.first_id, self.last_id + 1))


@dataclass(frozen=True, slots=True)
class MemoryView:
    """What GET returns: the raw JSON of the newest messages (newest first) and the rest."""

    messages_json: list[bytes]
    context: str | None
    tokens: int
    window_length: int
    rate: RateWindow | None = None  # when the read was charged to rate limits


@dataclass(frozen=True, slots=True)
class FoldState:
    """A consistent snapshot of what a fold needs."""

    gen: str | None
    messages: list[dict[str, Any]]
    summary: str | None
    watermark: int


def is_cluster(redis: Redis) -> bool:
    return isinstance(redis, RedisCluster)


class SessionStore:
    def __init__(self, redis: Redis, keyspace: Keyspace) -> None:
        self._redis = redis
        self._keys = keyspace
        # On Redis Cluster the tenant-wide bookkeeping cannot join a session's script (other
        # slots): it follows in a second round trip, and rate charges stay flask-limiter's.
        self._cluster = is_cluster(redis)
        self._append = redis.register_script(_APPEND)
        self._delete_message = redis.register_script(_DELETE_MESSAGE)
        self._commit_fold = redis.register_script(_COMMIT_FOLD)
        self._add_tokens = redis.register_script(_ADD_TOKENS)
        self._charge = redis.register_script(CHARGE_SCRIPT)

    @property
    def keyspace(self) -> Keyspace:
        return self._keys

    @property
    def redis(self) -> Redis:
        return self._redis

    # --- writes ------------------------------------------------------------------------

    def append(
        self,
        tenant_id: str,
        session_id: str,
        messages: Sequence[NewMessage],
        *,
        context: str | None = None,
        ttl_seconds: int = 0,
        idempotency_key: str | None = None,
        may_create: bool = True,
        now_ms: int | None = None,
        rate: RateCharge | None = None,
        fold_claim: FoldClaim | None = None,
        window_size: int = 0,
        window_tokens: int | None = None,
    ) -> AppendResult:
        """Append messages (ids assigned here, increasing) and optionally replace the
        summary, in one script that on a single node also indexes the session, counts the
        messages and charges ``rate``. With ``may_create=False`` a session that does not
        exist yet is refused (nothing is written); a request ``rate`` refuses writes nothing
        (``AppendResult.rate`` says which). With ``fold_claim`` (single node only) a window
        now over ``window_size``/``window_tokens`` is claimed for folding in the same script
        (``AppendResult.fold_claimed``; None when no claim was attempted)."""
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        created_at = utc_iso(now)
        payloads = []
        for m in messages:
            body: dict[str, Any] = {"r": m.role, "c": m.content, "t": created_at, "n": m.token_count}
            if m.metadata:
                body["metadata"] = m.metadata
            # Strip the leading '{': the script prepends '{"id":<n>,'.
            payloads.append(orjson.dumps(body)[1:])
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32] if idempotency_key else ""
        keys = self._keys.session(tenant_id, session_id)
        if self._cluster:
            if rate is not None:
                raise ValueError("a rate charge cannot share a script with session keys on Redis Cluster")
            fold_claim = None  # the due set is in another slot: the caller claims afterwards
        args: list[Any] = [
            now,
            ttl_seconds,
            secrets.token_hex(8) if may_create else "",
            digest,
            context if context is not None else "",
            "1" if context is not None else "0",
            sum(m.token_count for m in messages),
            session_id,
            utc_day(now),
            *(fold_claim.args if fold_claim is not None else ("", 0, 0, "0")),
            window_size,
            window_tokens if window_tokens is not None else "",
            len(rate.hits) if rate is not None else 0,
            *(rate.args if rate is not None else ()),
            *payloads,
        ]
        usage = self._keys.usage(tenant_id)
        index = self._keys.sessions_index(tenant_id)
        script_keys = [keys.window, keys.meta, keys.idempotency]
        if not self._cluster:
            # One round trip: on a single node the script also indexes the session, counts
            # the messages, claims the fold and charges the rate limits. (redis-py's Script
            # sends EVALSHA, and loads the script only after a NOSCRIPT.)
            script_keys += [index, usage, self._keys.due, *(rate.keys if rate is not None else ())]
        reply = self._append(keys=script_keys, args=args)
        if self._cluster and not (reply[4] or reply[6]):  # appended: neither replayed nor refused
            # The tenant-wide keys live in other slots: a second round trip.
            pipe = self._redis.pipeline(transaction=False)
            pipe.zadd(index, {session_id: now}, xx=not may_create)
            if messages:
                pipe.hincrby(usage, "messages", len(messages))
                pipe.hincrby(usage, f"messages:{utc_day(now)}", len(messages))
            pipe.execute()
        first, last, length, created, replayed, tokens, refused, claimed = reply[:8]
        return AppendResult(
            int(first),
            int(last),
            int(length),
            bool(created),
            bool(replayed),
            int(tokens),
            bool(refused),
            RateWindow.from_reply(reply[8:]) if rate is not None else None,
            bool(claimed) if fold_claim is not None else None,
        )

    def delete_session(self, tenant_id: str, session_id: str) -> None:
        keys = self._keys.session(tenant_id, session_id)
        pipe = self._redis.pipeline(transaction=False)
        for key in keys.all:  # one key per UNLINK: cluster pipelines refuse multi-key ones
            pipe.unlink(key)
        pipe.zrem(self._keys.sessions_index(tenant_id), session_id)
        pipe.zrem(self._keys.due, self._keys.due_member(tenant_id, session_id))
        pipe.execute()

    def delete_message(self, tenant_id: str, session_id: str, message_id: int) -> bool:
        keys = self._keys.session(tenant_id, session_id)
        removed = self._delete_message(keys=[keys.window, keys.meta], args=[message_id])
        return removed is not None

    # --- reads -------------------------------------------------------------------------

    def read(
        self, tenant_id: str, session_id: str, *, limit: int, rate: RateCharge | None = None
    ) -> MemoryView:
        """The newest ``limit`` messages and the summary in one pipeline, which also charges
        ``rate`` when given (a refused read's data is simply not used)."""
        keys = self._keys.session(tenant_id, session_id)
        pipe = self._redis.pipeline(transaction=False)
        if rate is not None:
            if self._cluster:
                raise ValueError("a rate charge cannot share a pipeline with session keys on Redis Cluster")
            rate_keys = rate.keys
            # By hand, as in append: a Script on a pipeline costs a SCRIPT EXISTS round trip.
            pipe.evalsha(self._charge.sha, len(rate_keys), *rate_keys, *rate.args)
        pipe.lrange(keys.window, -limit, -1)
        pipe.hmget(keys.meta, "sum", "tok")
        pipe.llen(keys.window)
        results = pipe.execute(raise_on_error=False)
        window_rate = None
        if rate is not None:
            reply = results.pop(0)
            if isinstance(reply, NoScriptError):
                # Redis restarted or flushed its scripts: charge alone (redis-py loads it).
                reply = self._charge(keys=rate.keys, args=rate.args)
            elif isinstance(reply, Exception):
                raise reply
            window_rate = RateWindow.from_reply(reply)
        for result in results:
            if isinstance(result, Exception):
                raise result
        window, (summary, tokens), length = results
        window.reverse()
        return MemoryView(
            messages_json=[api_message(raw) for raw in window],
            context=summary.decode() if summary else None,
            tokens=int(tokens or 0),
            window_length=int(length),
            rate=window_rate,
        )

    def get_message(self, tenant_id: str, session_id: str, message_id: int) -> bytes | None:
        keys = self._keys.session(tenant_id, session_id)
        prefix = b'{"id":%d,' % message_id
        for raw in self._redis.lrange(keys.window, 0, -1):
            if raw.startswith(prefix):
                return api_message(raw)
        return None

    def list_sessions(self, tenant_id: str, *, offset: int, count: int, ttl_seconds: int = 0) -> list[str]:
        """Session ids by last write, oldest first; sessions past their TTL are pruned
        from the index first, so an expired session is never listed."""
        index = self._keys.sessions_index(tenant_id)
        pipe = self._redis.pipeline(transaction=False)
        self._prune_expired(pipe, index, ttl_seconds)
        pipe.zrange(index, offset, offset + count - 1)
        return [m.decode() for m in pipe.execute()[-1]]

    def count_sessions(self, tenant_id: str, *, ttl_seconds: int = 0) -> int:
        index = self._keys.sessions_index(tenant_id)
        pipe = self._redis.pipeline(transaction=False)
        self._prune_expired(pipe, index, ttl_seconds)
        pipe.zcard(index)
        return int(pipe.execute()[-1])

    @staticmethod
    def _prune_expired(pipe: Any, index: str, ttl_seconds: int) -> None:
        # Every write refreshes the session's TTL and its index score (ms of the write),
        # so a score older than the TTL means the session's keys have expired.
        if ttl_seconds > 0:
            cutoff = int(time.time() * 1000) - ttl_seconds * 1000
            pipe.zremrangebyscore(index, "-inf", f"({cutoff}")

    # --- folding -----------------------------------------------------------------------

    def fold_state(self, tenant_id: str, session_id: str) -> FoldState:
        keys = self._keys.session(tenant_id, session_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hmget(keys.meta, "gen", "sum", "wm")
        pipe.lrange(keys.window, 0, -1)
        (gen, summary, wm), window = pipe.execute()
        return FoldState(
            gen=gen.decode() if gen else None,
            messages=[orjson.loads(api_message(raw)) for raw in window],
            summary=summary.decode() if summary else None,
            watermark=int(wm or 0),
        )

    def commit_fold(
        self,
        tenant_id: str,
        session_id: str,
        *,
        lock_token: str,
        gen: str,
        expected_watermark: int,
        folded_ids: Sequence[int],
        folded_tokens: int,
        summary: str | None,
        tokens_spent: int,
    ) -> str:
        """Store the new summary, advance the watermark and drop exactly the folded
        messages — atomically, and only if nothing moved underneath. Returns ``"ok"`` or
        the reason it refused (``lock``, ``gone``, ``moved``, ``changed``)."""
        keys = self._keys.session(tenant_id, session_id)
        result = self._commit_fold(
            keys=[keys.window, keys.meta, keys.lock],
            args=[
                lock_token,
                gen,
                expected_watermark,
                tokens_spent,
                "1" if summary is None else "0",
                summary or "",
                folded_tokens,
                *folded_ids,
            ],
        )
        return "ok" if result == 1 else result.decode()

    def add_tokens(self, tenant_id: str, session_id: str, *, gen: str, tokens: int) -> None:
        keys = self._keys.session(tenant_id, session_id)
        self._add_tokens(keys=[keys.meta], args=[gen, tokens])

    def window_stats(self, tenant_id: str, session_id: str) -> tuple[int, int]:
        """(messages in the window, tokens in the window)."""
        keys = self._keys.session(tenant_id, session_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.llen(keys.window)
        pipe.hget(keys.meta, "wt")
        length, wt = pipe.execute()
        return int(length), int(wt or 0)

    # --- tenant-wide -------------------------------------------------------------------

    def erase_tenant_data(self, tenant_id: str, *, batch: int = 500) -> int:
        """UNLINK every data key of a tenant, SCANning in batches (never KEYS)."""
        removed = 0
        for pattern in self._keys.tenant_data_patterns(tenant_id):
            chunk: list[bytes] = []
            for key in self._redis.scan_iter(match=pattern, count=batch):
                chunk.append(key)
                if len(chunk) >= batch:
                    removed += self._unlink_each(chunk)
                    chunk = []
            if chunk:
                removed += self._unlink_each(chunk)
        stale = [m for m, _ in self._redis.zscan_iter(self._keys.due, match=f"{tenant_id}:*")]
        if stale:
            self._redis.zrem(self._keys.due, *stale)
        return removed

    def _unlink_each(self, keys: list[bytes]) -> int:
        # One UNLINK per key inside a pipeline: keys of different sessions live in
        # different cluster slots, so a multi-key UNLINK would be cross-slot.
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.unlink(key)
        return sum(pipe.execute())

    def ping(self) -> bool:
        return bool(self._redis.ping())
