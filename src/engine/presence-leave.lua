-- A connection is gone; its user was seen now.
-- KEYS[1] = the user's connections; KEYS[2] = the user's last-seen time.
-- ARGV[1] = connection id; ARGV[2] = now; ARGV[3] = how long the last-seen time is kept.
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
