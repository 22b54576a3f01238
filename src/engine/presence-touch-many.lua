-- presence-touch.lua for many connections in one call (a process's heartbeat).
-- KEYS = per entry: its user's connections, its user's last-seen time (the pairs repeat for a
-- user with several connections). ARGV[1] = now; ARGV[2] = ttl; ARGV[3] = how long the
-- last-seen time is kept; ARGV[3 + i] = entry i's connection id.
local now = tonumber(ARGV[1])
local expiry = now + tonumber(ARGV[2])
for i = 1, #KEYS / 2 do
  local conns = KEYS[2 * i - 1]
  redis.call('ZREMRANGEBYSCORE', conns, '-inf', now)
  redis.call('ZADD', conns, expiry, ARGV[3 + i])
  local last = redis.call('ZRANGE', conns, -1, -1, 'WITHSCORES')
  redis.call('PEXPIRE', conns, math.max(1, tonumber(last[2]) - now))
  redis.call('SET', KEYS[2 * i], ARGV[1], 'PX', ARGV[3])
end
return #KEYS / 2
