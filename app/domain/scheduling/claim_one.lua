-- Claim one session's fold (see claim_fold). KEYS: due. ARGV: member, now, lease end, has slot.
return claim_fold(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
