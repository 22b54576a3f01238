-- presence-leave.lua for many connections in one call (a process stopping, sockets closing
-- together), on Redis's clock. KEYS = per entry: its user's connections, its user's last-seen
-- time. ARGV[1] = how long the last-seen time is kept; ARGV[1 + i] = entry i's connection id.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #KEYS / 2 do
  redis.call('ZREM', KEYS[2 * i - 1], ARGV[1 + i])
  redis.call('SET', KEYS[2 * i], now, 'PX', ARGV[1])
end
return #KEYS / 2
