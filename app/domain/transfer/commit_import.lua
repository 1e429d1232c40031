-- Commit a staged import: the staged window and archive become the session's, with its
-- meta — only if the session does not exist yet. On a single node the tenant-wide
-- bookkeeping follows in the same script (session index, usage, due marks).
-- KEYS: window, meta, idempotency, archive, postings, documents, vectors, staged window,
--       staged archive; on a single node also the tenant's session index, its usage hash,
--       the fold due set and the index due set.
-- ARGV: see ImportCommit in scripts.py, in that order.
-- Returns 1, or 'exists' (then the staged keys are dropped and nothing else changes).
local window, meta, idem, archive = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local staged_window, staged_archive = KEYS[8], KEYS[9]
local index, usage, due, index_due = KEYS[10], KEYS[11], KEYS[12], KEYS[13]
local gen, created, updated = ARGV[1], ARGV[2], ARGV[3]
local has_summary, summary, tokens = ARGV[4], ARGV[5], ARGV[6]
local last_id, watermark, folded, window_tokens = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local ttl = tonumber(ARGV[11])
local session_id, index_score, due_member = ARGV[12], ARGV[13], ARGV[14]
local messages, day, now_seconds = tonumber(ARGV[15]), ARGV[16], ARGV[17]
local indexed, fold_due = ARGV[18], ARGV[19]

if redis.call('HEXISTS', meta, 'gen') == 1 then
  redis.call('UNLINK', staged_window, staged_archive)
  return 'exists'
end
-- Leftovers of an expired or erased session (a lock's late write, an index pass's) must
-- not leak into the new one.
redis.call('UNLINK', window, meta, idem, archive, KEYS[5], KEYS[6], KEYS[7])
if redis.call('EXISTS', staged_window) == 1 then redis.call('RENAME', staged_window, window) end
if redis.call('EXISTS', staged_archive) == 1 then redis.call('RENAME', staged_archive, archive) end
redis.call('HSET', meta, 'gen', gen, 'crt', created, 'upd', updated, 'next', last_id,
           'wm', watermark, 'folded', folded, 'wt', window_tokens, 'tok', tokens)
if has_summary == '1' then redis.call('HSET', meta, 'sum', summary) end
for _, key in ipairs({window, meta, archive}) do
  if ttl > 0 then redis.call('EXPIRE', key, ttl) else redis.call('PERSIST', key) end
end
if index then
  redis.call('ZADD', index, index_score, session_id)
  if messages > 0 then
    redis.call('HINCRBY', usage, 'messages', messages)
    redis.call('HINCRBY', usage, 'messages:' .. day, messages)
  end
  if indexed == '1' then redis.call('ZADD', index_due, 'NX', now_seconds, due_member) end
  if fold_due == '1' then redis.call('ZADD', due, 'NX', now_seconds, due_member) end
end
return 1
