-- Claims due members of a schedule for a lease, atomically: two claimers never take one member
-- for one lease, and a claimer that dies leaves it due again when the lease ends. Due-ness and
-- lease ends are on Redis's clock, so that holds whatever the claimers' own clocks say.
-- KEYS[1] = the schedule (sorted set: member → due time, epoch ms); ARGV[1] = lease (ms);
-- ARGV[2] = at most this many. Returns the lease end, then member, due time, member, ...
-- (earliest first), each now due at that lease end: the claim's fence (schedule-remove.lua).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local lease_end = now + tonumber(ARGV[1])
for i = 1, #due, 2 do
  redis.call('ZADD', KEYS[1], 'XX', lease_end, due[i])
end
table.insert(due, 1, lease_end)
return due
