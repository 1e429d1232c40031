-- Remove one message from the window and its tokens from the window's count.
-- KEYS: window, meta. ARGV: message id. Returns the removed element or false.
local window, meta = KEYS[1], KEYS[2]
local wanted = ARGV[1]
local items = redis.call('LRANGE', window, 0, -1)
for i = 1, #items do
  if string.match(items[i], '^{"id":(%d+),') == wanted then
    redis.call('LREM', window, 1, items[i])
    local tk
    if string.match(items[i], '^{"id":%d+,"r":"') then
      tk = tonumber(string.match(items[i], ',"n":(%d+)[,}]')) or 0
    else  -- written before the short keys
      tk = tonumber(string.match(items[i], '"token_count":(%d+)[,}]')) or 0
    end
    redis.call('HINCRBY', meta, 'wt', -tk)
    return items[i]
  end
end
return false
