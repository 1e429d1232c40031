-- The messages of a session not indexed yet, oldest first, at most ARGV[1] of them.
-- KEYS: window, meta, archive.
-- Returns {gen or '', indexed up to (id), last id given, element...}.
local window, meta, archive = KEYS[1], KEYS[2], KEYS[3]
local most = tonumber(ARGV[1])
local state = redis.call('HMGET', meta, 'gen', 'ix', 'next')
local indexed_to = tonumber(state[2] or '0')
local reply = {state[1] or '', indexed_to, tonumber(state[3] or '0')}
if not state[1] then return reply end
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
