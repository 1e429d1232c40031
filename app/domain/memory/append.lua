-- Append messages to a session's window (and optionally replace its summary), atomically.
-- Needs charge_limits (ratelimit/charge_limits.lua) and claim_fold (scheduling/claim_fold.lua).
--
-- KEYS: window, meta, idempotency, then the keys that share the session's TTL (archive,
--       postings, documents, vectors); on a single node also the tenant's session index,
--       its usage hash, the fold due set, the index due set, then the rate charge's keys
--       (two per limit).
-- ARGV: see AppendArgs in scripts.py, in that order; then the charge's numbers (three per
--       limit), then one stored payload per message (its JSON without the leading '{').
-- Returns {first, last, window length, created, replayed (1; 2: key reused with another
--          body), window tokens, refused, claimed,
--          then the rate window (see charge_limits)}.
-- A request the rate limits refuse changes nothing but their counters.
local window, meta, idem = KEYS[1], KEYS[2], KEYS[3]
local lasting = {KEYS[1], KEYS[2], KEYS[4], KEYS[5], KEYS[6], KEYS[7]}
local index, usage, due, index_due = KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local gen = ARGV[3]                       -- '': only an existing session may be appended to
local idem_digest = ARGV[4]               -- '': no Idempotency-Key
local context, has_context = ARGV[5], ARGV[6]
local tokens_sum = tonumber(ARGV[7])
local session_id, day = ARGV[8], ARGV[9]
local claim_member = ARGV[10]             -- '': no fold claim in this script
local claim_now, lease_until, has_slot = ARGV[11], ARGV[12], ARGV[13]
local window_size, window_tokens_max = tonumber(ARGV[14]), ARGV[15]
local limits = tonumber(ARGV[16])
local due_member = ARGV[17]               -- the session in the due sets
local indexed = ARGV[18]                  -- '1': long-term memory on, new messages get indexed
local body_digest = ARGV[19]              -- what the Idempotency-Key was first sent with
local FIXED_ARGS = 19

local rate = {1, 0, 0, 0, 0, 0}
if limits > 0 then
  rate = charge_limits(12, FIXED_ARGS + 1, limits)
  if rate[1] == 0 then return {0, 0, 0, 0, 0, 0, 0, 0, unpack(rate)} end
end
if gen == '' and redis.call('HEXISTS', meta, 'gen') == 0 then
  return {0, 0, 0, 0, 0, 0, 1, 0, unpack(rate)}
end
if idem_digest ~= '' then
  local seen = redis.call('HGET', idem, idem_digest)
  if seen then
    local ts, first, last, digest = string.match(seen, '^(%d+):(%d+):(%d+):?(%x*)$')
    if ts and now - tonumber(ts) < 86400000 then
      -- replayed = 2: the key was first used with another body; nothing is written.
      local replayed = 1
      if digest ~= '' and digest ~= body_digest then replayed = 2 end
      return {tonumber(first), tonumber(last), redis.call('LLEN', window), 0, replayed,
              tonumber(redis.call('HGET', meta, 'wt') or '0'), 0, 0, unpack(rate)}
    end
  end
end
local p = FIXED_ARGS + 3 * limits
local n = #ARGV - p
local created = redis.call('HSETNX', meta, 'gen', gen)
if created == 1 then redis.call('HSET', meta, 'crt', now) end
local last = redis.call('HINCRBY', meta, 'next', n)
local first = last - n + 1
if n > 0 then
  local items = {}
  for i = 1, n do items[i] = '{"id":' .. (first + i - 1) .. ',' .. ARGV[p + i] end
  redis.call('RPUSH', window, unpack(items))
  redis.call('HINCRBY', meta, 'wt', tokens_sum)
end
if has_context == '1' then redis.call('HSET', meta, 'sum', context) end
redis.call('HSET', meta, 'upd', now)
if idem_digest ~= '' then
  redis.call('HSET', idem, idem_digest, now .. ':' .. first .. ':' .. last .. ':' .. body_digest)
  -- Keep the record bounded: drop entries past their 24 h once the hash grows.
  if redis.call('HLEN', idem) > 256 then
    local all = redis.call('HGETALL', idem)
    for i = 1, #all, 2 do
      local ts = tonumber(string.match(all[i + 1], '^(%d+):'))
      if ts and now - ts >= 86400000 then redis.call('HDEL', idem, all[i]) end
    end
  end
  local idem_ttl = 86400
  if ttl > 0 and ttl < idem_ttl then idem_ttl = ttl end
  redis.call('EXPIRE', idem, idem_ttl)
end
for _, key in ipairs(lasting) do
  if ttl > 0 then redis.call('EXPIRE', key, ttl) else redis.call('PERSIST', key) end
end
local length = redis.call('LLEN', window)
local window_tokens = tonumber(redis.call('HGET', meta, 'wt') or '0')
local claimed = 0
if due then
  if gen == '' then
    redis.call('ZADD', index, 'XX', now, session_id)
  else
    redis.call('ZADD', index, now, session_id)
  end
  if n > 0 then
    redis.call('HINCRBY', usage, 'messages', n)
    redis.call('HINCRBY', usage, 'messages:' .. day, n)
    if indexed == '1' then redis.call('ZADD', index_due, 'NX', now / 1000, due_member) end
  end
  if claim_member ~= '' and (length > window_size
      or (window_tokens_max ~= '' and window_tokens > tonumber(window_tokens_max))) then
    claimed = claim_fold(due, claim_member, claim_now, lease_until, has_slot)
  end
end
return {first, last, length, created, 0, window_tokens, 0, claimed, unpack(rate)}
