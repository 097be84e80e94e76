-- release: give back a half-open trial permit without an outcome (engine.release).
-- KEYS[1] state hash.
-- ARGV[1] ticket epoch, ARGV[2] ticket generation, ARGV[3] ticket permit id.
-- Returns 1 if a permit of the current epoch and generation was returned, else 0.
local head = redis.call('HMGET', KEYS[1], 'epoch', 'generation')
if head[1] ~= ARGV[1] or tonumber(head[2] or 0) ~= tonumber(ARGV[2]) then return 0 end
return redis.call('HDEL', KEYS[1], 'permit:' .. ARGV[3])
