-- settle_due(due_key, member, now, status, more_due): after a job's commit (status 1), a
-- run with nothing to commit (0) or one that found its session gone, in the same script:
-- drop the session's due mark, or make it due now when more is due already (an append's
-- own claim or NX mark could not move the run's lease). A refused commit ('lock', 'moved',
-- 'changed') is left to the caller, which reschedules it. Returns whether it settled.
local function settle_due(due_key, member, now, status, more_due)
  if status ~= 1 and status ~= 0 and status ~= 'gone' then return false end
  if more_due then
    redis.call('ZADD', due_key, now, member)
  else
    redis.call('ZREM', due_key, member)
  end
  return true
end
