-- Takes one of `limit` slots of a key for a holder, if fewer than `limit` unexpired leases are
-- held; a holder that has one renews it. KEYS[1] = the holders (sorted set: holder → lease
-- end, epoch ms); ARGV[1] = holder; ARGV[2] = limit; ARGV[3] = now; ARGV[4] = lease (ms).
-- Returns 1 when the slot is held, 0 when all are taken.
local now = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
  if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[4]) then
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
  end
  return 1
end
return 0
