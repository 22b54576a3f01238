-- Appends a batch of entries to a stream in one round trip, in argument order.
-- KEYS[1] = stream key; ARGV[1] = approximate MAXLEN; then per entry: its number of fields n,
-- followed by n field/value pairs. Returns the entry ids.
-- Only the last XADD trims: one approximate trim per batch keeps the same bound.
local n = #ARGV
local ids = {}
local i = 2
while i <= n do
  local last = i + 2 * tonumber(ARGV[i])
  if last >= n then
    ids[#ids + 1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, i + 1, last))
  else
    ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', unpack(ARGV, i + 1, last))
  end
  i = last + 1
end
return ids
