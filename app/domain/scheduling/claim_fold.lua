-- claim_fold(due_key, member, now, lease_until, has_slot) -> 1 when claimed for the caller.
-- Marks the member due (now) if it is not; a member whose due time has come is claimed
-- by moving its score to the end of a lease, so no other process takes it meanwhile and a
-- killed worker's claim lapses by itself. Without a free slot it only marks the member due.
local function claim_fold(due_key, member, now, lease_until, has_slot)
  local score = redis.call('ZSCORE', due_key, member)
  if not score then
    redis.call('ZADD', due_key, now, member)
    score = now
  end
  if tonumber(score) <= tonumber(now) and has_slot == '1' then
    redis.call('ZADD', due_key, lease_until, member)
    return 1
  end
  return 0
end
