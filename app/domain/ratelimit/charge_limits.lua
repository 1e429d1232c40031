-- limits' acquire_sliding_window.lua (limits 5.8), looped over several limits and returning
-- the window it saw (after its own increment when it admitted). Times are milliseconds
-- inside, as in the original.
--   charge_limits(k, a, n): n limits, keys from KEYS[k] (previous, current per limit),
--   numbers from ARGV[a] (amount, expiry seconds, cost per limit).
--   Returns {admitted, index, previous_count, previous_ttl, current_count, current_ttl}:
--   the limit that refused, else the first; evaluation stops at the first refusal.
local function charge_limits(k, a, n)
  local report = {1, 0, 0, 0, 0, 0}
  for i = 0, n - 1 do
    local previous_key, current_key = KEYS[k + 2 * i], KEYS[k + 2 * i + 1]
    local limit = tonumber(ARGV[a + 3 * i])
    local expiry = tonumber(ARGV[a + 3 * i + 1]) * 1000
    local amount = tonumber(ARGV[a + 3 * i + 2])
    local current_ttl = tonumber(redis.call('pttl', current_key))
    if current_ttl > 0 and current_ttl < expiry then
      -- The current window expired: shift it to the previous window.
      redis.call('rename', current_key, previous_key)
      redis.call('set', current_key, 0, 'PX', current_ttl + expiry)
    end
    local previous_count = tonumber(redis.call('get', previous_key)) or 0
    local previous_ttl = tonumber(redis.call('pttl', previous_key)) or 0
    local current_count = tonumber(redis.call('get', current_key)) or 0
    current_ttl = tonumber(redis.call('pttl', current_key)) or 0
    if previous_ttl <= 0 then previous_ttl = 0 end
    if current_ttl <= 0 then current_ttl = 0 end
    local admitted = 0
    local weighted_count = math.floor(previous_count * previous_ttl / expiry) + current_count
    if amount <= limit and (weighted_count + amount) <= limit then
      admitted = 1
      if redis.call('exists', current_key) == 1 then
        current_count = redis.call('incrby', current_key, amount)
      else
        redis.call('set', current_key, amount, 'PX', expiry * 2)
        current_count = amount
        current_ttl = expiry * 2
      end
    end
    if admitted == 0 then
      return {0, i + 1, previous_count, previous_ttl, current_count, current_ttl}
    end
    if i == 0 then
      report = {1, 1, previous_count, previous_ttl, current_count, current_ttl}
    end
  end
  return report
end
