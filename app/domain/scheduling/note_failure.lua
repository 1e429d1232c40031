-- Count a failed job run on the session it was for.
-- KEYS: meta. ARGV: gen, error code, the count's field, the error's field.
-- Returns the failures so far, or -1 when the session is gone (deleted or recreated).
if redis.call('HGET', KEYS[1], 'gen') ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[1], ARGV[4], ARGV[2])
return redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
