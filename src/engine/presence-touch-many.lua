-- presence-touch.lua for many connections in one call (a process's heartbeat), on Redis's clock.
-- KEYS = per entry: its user's connections, its user's last-seen time (the pairs repeat for a
-- user with several connections). ARGV[1] = ttl; ARGV[2] = how long the last-seen time is kept;
-- ARGV[2 + i] = entry i's connection id.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = now + tonumber(ARGV[1])
for i = 1, #KEYS / 2 do
  local conns = KEYS[2 * i - 1]
  redis.call('ZREMRANGEBYSCORE', conns, '-inf', now)
  redis.call('ZADD', conns, expiry, ARGV[2 + i])
  local last = redis.call('ZRANGE', conns, -1, -1, 'WITHSCORES')
  redis.call('PEXPIRE', conns, math.max(1, tonumber(last[2]) - now))
  redis.call('SET', KEYS[2 * i], now, 'PX', ARGV[2])
end
return #KEYS / 2
