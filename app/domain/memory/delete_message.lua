-- Remove one message from the window (its tokens from the window's count) or from the
-- archive, and, if it was indexed, from the search index.
-- KEYS: window, meta, archive, postings, documents, vectors.
-- ARGV: message id, the id as 4 little-endian bytes (how postings hold it), the vector
--       key prefix ('' = vectors are in the vectors hash; see search/redisearch.py).
-- Returns the removed element or false.
local window, meta, archive = KEYS[1], KEYS[2], KEYS[3]
local postings, documents, vectors = KEYS[4], KEYS[5], KEYS[6]
local wanted, packed, vector_prefix = ARGV[1], ARGV[2], ARGV[3]

local function unindex()
  local doc = redis.call('HGET', documents, wanted)
  if not doc then return end
  local length = 0
  local first = true
  for word in string.gmatch(doc, '%S+') do
    if first then
      length = tonumber(word)
      first = false
    else
      local list = redis.call('HGET', postings, word)
      if list then
        local kept = {}
        for at = 1, #list, 12 do
          if string.sub(list, at, at + 3) ~= packed then kept[#kept + 1] = string.sub(list, at, at + 11) end
        end
        if #kept == 0 then
          redis.call('HDEL', postings, word)
        else
          redis.call('HSET', postings, word, table.concat(kept))
        end
      end
    end
  end
  redis.call('HDEL', documents, wanted)
  redis.call('HDEL', vectors, wanted)
  if vector_prefix ~= '' then redis.call('DEL', vector_prefix .. wanted) end
  redis.call('HINCRBY', meta, 'xn', -1)
  redis.call('HINCRBY', meta, 'xl', -length)
end

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
    unindex()
    return items[i]
  end
end
local archived = redis.call('ZRANGEBYSCORE', archive, wanted, wanted)
if #archived > 0 then
  redis.call('ZREMRANGEBYSCORE', archive, wanted, wanted)
  unindex()
  return archived[1]
end
return false
