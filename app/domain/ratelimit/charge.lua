-- Charge a request to its rate limits on its own.
-- KEYS: previous and current window key of each limit. ARGV: amount, expiry, cost of each.
return charge_limits(1, 1, #KEYS / 2)
