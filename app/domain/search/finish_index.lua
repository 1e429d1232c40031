-- Needs settle_due (scheduling/settle_due.lua).
-- End an index pass in one step: commit its documents, postings and vectors and the index
-- watermark — only while the pass holds the index lock, the session is the one it read,
-- nobody indexed meanwhile and every message read still exists (a message deleted
-- meanwhile makes it refuse: the next pass reads without it) — then release the lock and
-- say whether messages given since are still unindexed. On a single node it also settles
-- the session's index due mark in the same step: dropped, or due now when more is pending.
-- KEYS: window, meta, archive, postings, documents, vectors, index lock, then the index due
--       set (single node only).
-- ARGV: lock token, due member, now, commit (0/1), then for a commit only: gen, expected
--       watermark, new watermark, documents, terms, the vector key prefix ('' = vectors go
--       in the vectors hash; else one hash per message, for RediSearch, on a single node),
--       the tenant id and the encoded session id (its tags), then per document: id, record
--       ("<length> <term> <term>..."), vector ('' for none), then per term: term, its new
--       postings (12 bytes each).
-- Returns {status, more due (0/1), settled (0/1)}: status 1 on commit, 0 when there was
-- nothing to commit, or why the commit was refused: 'lock', 'gone', 'moved', 'changed'.
local window, meta, archive = KEYS[1], KEYS[2], KEYS[3]
local postings, documents, vectors, lock, due = KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local token, due_member, now, has_commit = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local gen, expected, watermark = ARGV[5], ARGV[6], ARGV[7]
local n_docs, n_terms = tonumber(ARGV[8]), tonumber(ARGV[9])
local vector_prefix, tenant_tag, session_tag = ARGV[10], ARGV[11], ARGV[12]
local FIXED_ARGS = 12

local function commit()
  if redis.call('GET', lock) ~= token then return 'lock' end
  if redis.call('HGET', meta, 'gen') ~= gen then return 'gone' end
  if (redis.call('HGET', meta, 'ix') or '0') ~= expected then return 'moved' end

  local in_window = {}
  for _, element in ipairs(redis.call('LRANGE', window, 0, -1)) do
    in_window[string.match(element, '^{"id":(%d+),')] = true
  end
  for d = 0, n_docs - 1 do
    local id = ARGV[FIXED_ARGS + 3 * d + 1]
    if not in_window[id] and redis.call('ZCOUNT', archive, id, id) == 0 then return 'changed' end
  end

  local ttl = redis.call('PTTL', meta)
  -- Per-message vector hashes outlive the session by up to half its TTL (a refresh of
  -- every one on every write would cost a command per message): search results are read
  -- back from the session, so an expired session's vectors never surface.
  local vector_ttl = ttl > 0 and math.floor(ttl * 1.5) or 0
  local total_length = 0
  for d = 0, n_docs - 1 do
    local at = FIXED_ARGS + 3 * d
    local id, record, vector = ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
    redis.call('HSET', documents, id, record)
    total_length = total_length + tonumber(string.match(record, '^(%d+)'))
    if vector ~= '' then
      if vector_prefix == '' then
        redis.call('HSET', vectors, id, vector)
      else
        local key = vector_prefix .. id
        redis.call('HSET', key, 't', tenant_tag, 's', session_tag, 'v', vector)
        if vector_ttl > 0 then redis.call('PEXPIRE', key, vector_ttl) end
      end
    end
  end
  if vector_prefix ~= '' then
    local now = tonumber(redis.call('TIME')[1]) * 1000
    local refreshed = tonumber(redis.call('HGET', meta, 'vexp') or '0')
    if ttl > 0 and now - refreshed > ttl / 2 then
      for _, id in ipairs(redis.call('HKEYS', documents)) do
        redis.call('PEXPIRE', vector_prefix .. id, vector_ttl)
      end
      redis.call('HSET', meta, 'vexp', now)
    elseif ttl < 0 and refreshed > 0 then  -- the session no longer expires: neither do they
      for _, id in ipairs(redis.call('HKEYS', documents)) do redis.call('PERSIST', vector_prefix .. id) end
      redis.call('HDEL', meta, 'vexp')
    end
  end
  local base = FIXED_ARGS + 3 * n_docs
  for t = 0, n_terms - 1 do
    local term, added = ARGV[base + 2 * t + 1], ARGV[base + 2 * t + 2]
    local list = redis.call('HGET', postings, term)
    redis.call('HSET', postings, term, (list or '') .. added)
  end
  redis.call('HINCRBY', meta, 'xn', n_docs)
  redis.call('HINCRBY', meta, 'xl', total_length)
  redis.call('HSET', meta, 'ix', watermark)
  redis.call('HDEL', meta, 'ixfails', 'ixerr')
  for _, key in ipairs({postings, documents, vectors}) do
    if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
  end
  return 1
end

local status = has_commit == '1' and commit() or 0
if redis.call('GET', lock) == token then redis.call('DEL', lock) end
local state = redis.call('HMGET', meta, 'next', 'ix')
local more_due = tonumber(state[1] or '0') > tonumber(state[2] or '0')
local settled = due ~= nil and settle_due(due, due_member, now, status, more_due)
return {status, more_due and 1 or 0, settled and 1 or 0}
