-- Removes claimed members of a schedule, each only while its due time is still its claim's lease
-- end: a member re-added or claimed again since (its claim ran out) keeps its entry.
-- KEYS[1] = the schedule (sorted set: member → due time, epoch ms); ARGV = member, lease end,
-- member, lease end, ... Returns how many were removed.
local removed = 0
for i = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return removed
