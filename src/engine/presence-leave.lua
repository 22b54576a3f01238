-- A connection is gone; its user was seen now (Redis's clock).
-- KEYS[1] = the user's connections; KEYS[2] = the user's last-seen time.
-- ARGV[1] = connection id; ARGV[2] = how long the last-seen time is kept.
local t = redis.call('TIME')
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), 'PX', ARGV[2])
return 1
