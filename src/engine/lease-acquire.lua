-- Takes one of `limit` slots of a key for a holder, if fewer than `limit` unexpired leases are
-- held; a holder that has one renews it. Lease ends are on Redis's clock, so two processes whose
-- clocks disagree still never hold more than `limit` between them.
-- KEYS[1] = the holders (sorted set: holder → lease end, epoch ms); ARGV[1] = holder;
-- ARGV[2] = limit; ARGV[3] = lease (ms). Returns 1 when the slot is held, 0 when all are taken.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
  end
  return 1
end
return 0
