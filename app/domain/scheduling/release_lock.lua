-- Release a job's lock (a fold's, an index pass's) only while it still holds our token.
-- KEYS: lock. ARGV: token. Returns 1 when released.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
