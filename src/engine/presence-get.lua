-- Presence of many users in one round trip. KEYS = per user: its connections, its last-seen
-- time. ARGV[1] = now. Returns per user: live connections, last-seen time ('' if none).
-- Expired connections are removed on the way.
local now = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS, 2 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  out[#out + 1] = redis.call('ZCARD', KEYS[i])
  out[#out + 1] = redis.call('GET', KEYS[i + 1]) or ''
end
return out
