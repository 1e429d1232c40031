-- Erase a session whose vectors are per-message hashes (RediSearch, single node): those
-- first, found through the indexed documents, then every key of the session — in one
-- script, so an index pass cannot add a vector in between.
-- KEYS: documents, then every key of the session. ARGV: the vector key prefix.
if ARGV[1] == '' then return redis.error_reply('erase_session needs a vector key prefix') end
for _, id in ipairs(redis.call('HKEYS', KEYS[1])) do redis.call('UNLINK', ARGV[1] .. id) end
for i = 2, #KEYS do redis.call('UNLINK', KEYS[i]) end
return 0
