-- Removes a consumer from a group unless it holds pending entries (then it stays, with them, for
-- another consumer to claim and the idle-consumer sweep to remove later).
-- KEYS[1] = stream key; ARGV[1] = group; ARGV[2] = consumer.
-- Returns 1 when the consumer is gone (or never was), 0 when it was kept.
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then
  return 0
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
