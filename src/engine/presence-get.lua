-- Presence of many users in one round trip, as of Redis's clock. KEYS = per user: its
-- connections, its last-seen time. Returns per user: live connections, last-seen time ('' if
-- none). Expired connections are removed on the way.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 1, #KEYS, 2 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  out[#out + 1] = redis.call('ZCARD', KEYS[i])
  out[#out + 1] = redis.call('GET', KEYS[i + 1]) or ''
end
return out
