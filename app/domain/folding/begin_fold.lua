-- Start a fold: take the session's fold lock and read what the fold needs, in one step.
-- KEYS: lock, meta, window. ARGV: lock token, lock milliseconds.
-- Returns 0 when another process holds the lock; else {gen, summary, watermark, window
-- oldest first...}, nil for what is missing (a session that does not exist: nil gen, and
-- no lock kept).
local lock, meta, window = KEYS[1], KEYS[2], KEYS[3]
if not redis.call('SET', lock, ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
local state = redis.call('HMGET', meta, 'gen', 'sum', 'wm')
if not state[1] then
  redis.call('DEL', lock)
  return {false, false, false}
end
local reply = redis.call('LRANGE', window, 0, -1)
table.insert(reply, 1, state[3])
table.insert(reply, 1, state[2])
table.insert(reply, 1, state[1])
return reply
