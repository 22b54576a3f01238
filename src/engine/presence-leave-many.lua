-- presence-leave.lua for many connections in one call (a process stopping, sockets closing together).
-- KEYS = per entry: its user's connections, its user's last-seen time. ARGV[1] = now;
-- ARGV[2] = how long the last-seen time is kept; ARGV[2 + i] = entry i's connection id.
for i = 1, #KEYS / 2 do
  redis.call('ZREM', KEYS[2 * i - 1], ARGV[2 + i])
  redis.call('SET', KEYS[2 * i], ARGV[1], 'PX', ARGV[2])
end
return #KEYS / 2
