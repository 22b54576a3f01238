-- Unexpired leases of a key, as of Redis's clock. KEYS[1] = the holders (sorted set: holder →
-- lease end, epoch ms).
local t = redis.call('TIME')
return redis.call('ZCOUNT', KEYS[1], '(' .. (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)), '+inf')
