-- Removes the consumers of a group that hold no pending entries and have not read or claimed
-- for longer than ARGV[2] ms (left behind by processes that died).
-- KEYS[1] = stream key; ARGV[1] = group; ARGV[2] = idle ms. Returns the removed names.
local removed = {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do
    f[c[i]] = c[i + 1]
  end
  if tonumber(f['pending']) == 0 and tonumber(f['idle']) > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    removed[#removed + 1] = f['name']
  end
end
return removed
