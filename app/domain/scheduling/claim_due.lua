-- Claim up to ARGV[3] members whose due time (ARGV[1]) has come, leasing each until ARGV[2].
-- KEYS: due. Returns the claimed members.
local due, now, lease_until, count = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local members = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, count)
for i = 1, #members do redis.call('ZADD', due, lease_until, members[i]) end
return members
