-- Needs settle_due (scheduling/settle_due.lua).
-- End a fold in one step: commit what it produced (only if nothing moved underneath),
-- release its lock, and say whether the window still overflows. On a single node it also
-- settles the session's due mark in the same step, dropped or due now when more is due,
-- so an append can never land between the re-check and the mark.
-- KEYS: window, meta, lock, archive, then the due set (single node only).
-- ARGV: lock token, window size, window tokens ('' = no bound), due member, now, commit
--       (0/1), then for a commit only: gen, expected watermark, tokens spent, keep summary
--       (0/1), summary, folded tokens, archive (0/1), the folded ids oldest first.
-- Returns {status, more due (0/1), settled (0/1)}: status 1 on commit, 0 when there was
-- nothing to commit, or why the commit was refused: 'lock', 'gone', 'moved', 'changed'.
local window, meta, lock, archive, due = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local lock_token, window_size, window_tokens = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local due_member, now, has_commit = ARGV[4], ARGV[5], ARGV[6]
local gen, expected_watermark = ARGV[7], ARGV[8]
local tokens_spent, keep_summary, summary = tonumber(ARGV[9]), ARGV[10], ARGV[11]
local folded_tokens, keep_folded = tonumber(ARGV[12]), ARGV[13]
local FIXED_ARGS = 13

local function commit()
  if redis.call('GET', lock) ~= lock_token then return 'lock' end
  if redis.call('HGET', meta, 'gen') ~= gen then return 'gone' end
  if (redis.call('HGET', meta, 'wm') or '0') ~= expected_watermark then return 'moved' end
  local n = #ARGV - FIXED_ARGS
  local head = redis.call('LRANGE', window, 0, n - 1)
  if n == 0 or #head ~= n then return 'changed' end
  for i = 1, n do
    -- A folded message deleted meanwhile would otherwise live on inside the summary.
    if string.match(head[i], '^{"id":(%d+),') ~= ARGV[FIXED_ARGS + i] then return 'changed' end
  end
  if keep_folded == '1' then
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
end

local status = 0
if has_commit == '1' then
  status = commit()
  -- Tokens spent on a commit that was refused still count (they were billed), unless the
  -- session was deleted meanwhile.
  if status ~= 1 and tokens_spent > 0 and redis.call('HGET', meta, 'gen') == gen then
    redis.call('HINCRBY', meta, 'tok', tokens_spent)
  end
end
if redis.call('GET', lock) == lock_token then redis.call('DEL', lock) end
local length = redis.call('LLEN', window)
local more_due = length > window_size
if not more_due and window_tokens then
  more_due = tonumber(redis.call('HGET', meta, 'wt') or '0') > window_tokens
end
local settled = due ~= nil and settle_due(due, due_member, now, status, more_due)
return {status, more_due and 1 or 0, settled and 1 or 0}
