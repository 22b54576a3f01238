-- Creates a consumer group (and its stream if missing), with the group's entries-read counter
-- set, so that XINFO GROUPS can tell its lag: Redis leaves the counter unknown for a group
-- made at '$', and then reports the lag as nil. KEYS[1] = stream key; ARGV[1] = group;
-- ARGV[2] = '$' (read from the end) or '0' (from the start). Fails with BUSYGROUP if it exists.
local read = 0
if ARGV[2] == '$' and redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'entries-added' then
      read = info[i + 1]
    end
  end
end
return redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], ARGV[2], 'MKSTREAM', 'ENTRIESREAD', read)
