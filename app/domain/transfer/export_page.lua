-- One page of a session's messages for an export: ids above ARGV[1] and at most ARGV[2],
-- oldest first, the archive before the window — read in one script, so a fold moving
-- messages from the window to the archive between two pages never hides or repeats one.
-- KEYS: window, archive.  ARGV: after (exclusive), up to (inclusive), most.
-- Returns the stored elements.
local window, archive = KEYS[1], KEYS[2]
local after, upto, most = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local page = redis.call('ZRANGEBYSCORE', archive, '(' .. after, upto, 'LIMIT', 0, most)
if #page >= most then return page end
-- Every window id is above every archived one, and the window is in id order: find the
-- first element above `after` by bisection (LINDEX), then read on from there.
local function id_at(i)
  return tonumber(string.match(redis.call('LINDEX', window, i), '^{"id":(%d+),'))
end
local lo, hi = 0, redis.call('LLEN', window)
while lo < hi do
  local mid = math.floor((lo + hi) / 2)
  if id_at(mid) > after then hi = mid else lo = mid + 1 end
end
for _, element in ipairs(redis.call('LRANGE', window, lo, lo + most - #page - 1)) do
  if tonumber(string.match(element, '^{"id":(%d+),')) > upto then break end
  page[#page + 1] = element
end
return page
