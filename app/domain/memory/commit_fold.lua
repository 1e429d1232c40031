-- Commit a fold: the new summary, the watermark, and exactly the folded messages moved from
-- the window's head (to the archive with long-term memory on, else dropped) — only if
-- nothing moved underneath.
-- KEYS: window, meta, lock, archive.
-- ARGV: lock token, gen, expected watermark, tokens spent, keep summary (0/1), summary,
--       folded tokens, archive (0/1), then the folded ids, oldest first.
-- Returns 1 on commit, or the reason it refused: 'lock', 'gone', 'moved', 'changed'.
local window, meta, lock, archive = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local lock_token, gen, expected_watermark = ARGV[1], ARGV[2], ARGV[3]
local tokens_spent, keep_summary, summary = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local folded_tokens, keep_folded = tonumber(ARGV[7]), ARGV[8]
local FIXED_ARGS = 8
if redis.call('GET', lock) ~= lock_token then return 'lock' end
if redis.call('HGET', meta, 'gen') ~= gen then return 'gone' end
if (redis.call('HGET', meta, 'wm') or '0') ~= expected_watermark then return 'moved' end
local n = #ARGV - FIXED_ARGS
local head = redis.call('LRANGE', window, 0, n - 1)
if #head ~= n then return 'changed' end
for i = 1, n do
  -- A folded message deleted meanwhile would otherwise live on inside the summary.
  if string.match(head[i], '^{"id":(%d+),') ~= ARGV[FIXED_ARGS + i] then return 'changed' end
end
if keep_folded == '1' and n > 0 then
  local scored = {}
  for i = 1, n do
    scored[2 * i - 1] = ARGV[FIXED_ARGS + i]
    scored[2 * i] = head[i]
  end
  redis.call('ZADD', archive, unpack(scored))
  local ttl = redis.call('PTTL', meta)
  if ttl > 0 then redis.call('PEXPIRE', archive, ttl) end
end
redis.call('LTRIM', window, n, -1)
if keep_summary == '0' then redis.call('HSET', meta, 'sum', summary) end
redis.call('HSET', meta, 'wm', ARGV[FIXED_ARGS + n])
redis.call('HINCRBY', meta, 'folded', n)
redis.call('HINCRBY', meta, 'tok', tokens_spent)
redis.call('HINCRBY', meta, 'wt', -folded_tokens)
return 1
