-- Appends a batch of events to the stream in one round trip, in argument order.
-- KEYS[1] = stream key; ARGV[1] = approximate MAXLEN;
-- then groups of 4: topic, shipmentId, seq, data. Returns the entry ids.
-- Only the last XADD trims: one approximate trim per batch keeps the same bound.
local ids = {}
local last = #ARGV - 3
for i = 2, #ARGV, 4 do
  if i == last then
    ids[#ids + 1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
      'topic', ARGV[i], 'shipmentId', ARGV[i + 1], 'seq', ARGV[i + 2], 'data', ARGV[i + 3])
  else
    ids[#ids + 1] = redis.call('XADD', KEYS[1], '*',
      'topic', ARGV[i], 'shipmentId', ARGV[i + 1], 'seq', ARGV[i + 2], 'data', ARGV[i + 3])
  end
end
return ids
