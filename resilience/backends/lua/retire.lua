-- retire: forget an idle circuit (engine.idle): closed, no trial permit, no bulkhead slot
-- leased, nothing in its outbox, no outcome recorded for the idle time (an empty window: found
-- so by sweeps for the idle time, marked in the state's 'empty_since' field).
-- KEYS[1] state hash, KEYS[2] outbox list, KEYS[3] bulkhead slots, KEYS[4] the not-closed
-- index (absent in Cluster).
-- ARGV[1] now ms ("" = server TIME), ARGV[2] circuit name, ARGV[3] idle ms.
-- Returns 1 when the circuit's keys were deleted, else 0 (also for a circuit without state).
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local s = load(KEYS[1], '')
if s.state ~= 'closed' or next(s.permits) ~= nil then return 0 end
if redis.call('LLEN', KEYS[2]) > 0 then return 0 end
local now = now_ms(ARGV[1])
if redis.call('ZCOUNT', KEYS[3], '(' .. int(now), '+inf') > 0 then return 0 end
if s.win_calls > 0 then
  if (s.win_head + 1) * s.bucket_ms > now - tonumber(ARGV[3]) then return 0 end
else
  -- No outcome since the circuit was made or last closed (maybe a moment ago, its first calls
  -- still running: a closed call holds nothing here): idle once a sweep found this
  -- generation's window empty the idle time ago. The mark is "<generation>:<ms>".
  local gen, since = string.match(redis.call('HGET', KEYS[1], 'empty_since') or '', '^(%d+):(%d+)$')
  if tonumber(gen) ~= s.generation then
    redis.call('HSET', KEYS[1], 'empty_since', int(s.generation) .. ':' .. int(now))
    return 0
  end
  if tonumber(since) > now - tonumber(ARGV[3]) then return 0 end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
if KEYS[4] ~= nil then redis.call('HDEL', KEYS[4], ARGV[2]) end
return 1
