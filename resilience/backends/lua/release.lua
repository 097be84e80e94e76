-- release: give back a half-open trial permit without an outcome (engine.release).
-- KEYS[1] state hash.
-- ARGV[1] ticket generation, ARGV[2] ticket permit id.
-- Returns 1 if a permit of the current generation was returned, else 0.
local generation = redis.call('HGET', KEYS[1], 'generation')
if tonumber(generation or 0) ~= tonumber(ARGV[1]) then return 0 end
return redis.call('HDEL', KEYS[1], 'permit:' .. ARGV[2])
