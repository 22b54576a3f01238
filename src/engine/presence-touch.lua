-- A connection is present until now + ttl; its user was seen now. "Now" is Redis's clock, so
-- every process agrees on it whatever its own clock says.
-- KEYS[1] = the user's connections (sorted set: connection id → expiry, epoch ms);
-- KEYS[2] = the user's last-seen time. ARGV[1] = connection id; ARGV[2] = ttl (ms);
-- ARGV[3] = how long the last-seen time is kept. Expired connections are removed, and the set
-- expires with its last connection, so a process that dies leaves nothing behind.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(last[2]) - now))
redis.call('SET', KEYS[2], now, 'PX', ARGV[3])
return 1
