-- Start an index pass: take the session's index lock and read the messages not indexed
-- yet, oldest first, at most ARGV[3] of them — in one step.
-- KEYS: index lock, window, meta, archive. ARGV: lock token, lock milliseconds, most.
-- Returns 0 when another process holds the lock; else {gen or '', indexed up to (id),
-- last id given, element...} (no lock kept when the session does not exist).
local lock, window, meta, archive = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local most = tonumber(ARGV[3])
if not redis.call('SET', lock, ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
local state = redis.call('HMGET', meta, 'gen', 'ix', 'next')
local indexed_to = tonumber(state[2] or '0')
local reply = {state[1] or '', indexed_to, tonumber(state[3] or '0')}
if not state[1] then
  redis.call('DEL', lock)
  return reply
end
local archived = redis.call('ZRANGEBYSCORE', archive, '(' .. indexed_to, '+inf', 'LIMIT', 0, most)
for i = 1, #archived do reply[#reply + 1] = archived[i] end
if #archived < most then
  -- Every window id is above every archived one.
  for _, element in ipairs(redis.call('LRANGE', window, 0, -1)) do
    if #reply - 3 >= most then break end
    if tonumber(string.match(element, '^{"id":(%d+),')) > indexed_to then reply[#reply + 1] = element end
  end
end
return reply
