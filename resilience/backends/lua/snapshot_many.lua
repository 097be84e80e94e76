-- snapshot_many: read many circuits at once, for the admin changelist (read-only).
-- KEYS[1..n] state hashes.
-- No ARGV.
-- Returns {server seconds, server microseconds, HGETALL of KEYS[1], ..., of KEYS[n]}
-- (an empty array for a circuit never written); the client decodes them into CircuitState
-- and calls engine.snapshot(), so the view is computed by the same code as in memory.
local t = redis.call('TIME')
local result = {t[1], t[2]}
for i = 1, #KEYS do
  result[i + 2] = redis.call('HGETALL', KEYS[i])
end
return result
