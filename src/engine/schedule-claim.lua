-- Claims due members of a schedule for a lease, atomically: two claimers never take one member
-- for one lease, and a claimer that dies leaves it due again when the lease ends.
-- KEYS[1] = the schedule (sorted set: member → due time, epoch ms); ARGV[1] = now;
-- ARGV[2] = lease (ms); ARGV[3] = at most this many. Returns member, due time, member, ...
-- (earliest first), each now due at now + lease.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
local lease_end = tonumber(ARGV[1]) + tonumber(ARGV[2])
for i = 1, #due, 2 do
  redis.call('ZADD', KEYS[1], 'XX', lease_end, due[i])
end
return due
