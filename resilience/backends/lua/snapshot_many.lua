-- snapshot_many: read many circuits at once, for the admin changelist (read-only).
-- KEYS[1..n] state hashes, KEYS[n+1..2n] the same circuits' bulkhead slot sets.
-- ARGV[1..n] "1" where the circuit's policy tracks calls in flight (its slot set is read),
-- else "0".
-- Returns {server seconds, server microseconds, HGETALL of KEYS[1], ..., of KEYS[n],
-- ZRANGE WITHSCORES of KEYS[n+1], ..., of KEYS[2n]} (empty arrays for a circuit never
-- written or not tracked); the client decodes them into CircuitState and calls
-- engine.snapshot(), so the view is computed by the same code as in memory.
local t = redis.call('TIME')
local result = {t[1], t[2]}
local n = #KEYS / 2
for i = 1, n do
  result[i + 2] = redis.call('HGETALL', KEYS[i])
end
for i = 1, n do
  if ARGV[i] == '1' then
    result[n + i + 2] = redis.call('ZRANGE', KEYS[n + i], 0, -1, 'WITHSCORES')
  else
    result[n + i + 2] = {}
  end
end
return result
