-- Record when an API key was last used, only while the key exists: a key revoked a
-- moment ago must not reappear. KEYS: the key's record. ARGV: the time (ISO 8601).
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'last_used_at', ARGV[1]) end
return 0
