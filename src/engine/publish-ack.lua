-- Hands a batch of stream entries to every process and acknowledges them, in one round trip
-- (node-redis under Bun writes each command of a pipeline to the socket on its own).
-- KEYS[1] = stream key; ARGV[1] = group; ARGV[2] = channel; ARGV[3] = '1' to publish ARGV[4],
-- '0' to only acknowledge; ARGV[5..] = the ids to acknowledge. The publish comes first: an
-- entry is acknowledged only once every subscribed process has been handed it.
if ARGV[3] == '1' then
  redis.call('PUBLISH', ARGV[2], ARGV[4])
end
if #ARGV < 5 then
  return 0
end
return redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 5))
