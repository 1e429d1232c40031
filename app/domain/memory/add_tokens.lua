-- Tokens spent on a fold that could not commit still count (they were billed), unless the
-- session was deleted meanwhile. KEYS: meta. ARGV: gen, tokens.
if redis.call('HGET', KEYS[1], 'gen') == ARGV[1] then
  redis.call('HINCRBY', KEYS[1], 'tok', tonumber(ARGV[2]))
end
return 0
