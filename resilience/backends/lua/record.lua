-- record: count the outcome of an admitted call (engine.record).
-- KEYS[1] state hash, KEYS[2] outbox list, KEYS[3] bulkhead slots (unused here), KEYS[4] the
-- not-closed index (absent in Cluster; written by transition(), see common.lua index_state).
-- ARGV[1] now ms ("" = server TIME), ARGV[2] circuit name, ARGV[3] epoch for a new hash,
-- ARGV[4] outbox bound, ARGV[5] ticket epoch, ARGV[6] ticket generation, ARGV[7] ticket
-- permit ("" = none), ARGV[8] failed (1|0, slow calls already counted as failures by the
-- client), ARGV[9..16] policy: failure_threshold, failure_rate_threshold, minimum_calls,
-- bucket_ms, recovery_timeout, backoff_multiplier, max_recovery_timeout, success_threshold,
-- ARGV[17..] optional deferred successes (see apply_successes), applied first.
-- Returns the transitions it performed as JSON strings (0 or 1; a deferred success may be the
-- one that trips, see apply_successes).
local name = ARGV[2]
local s = load(KEYS[1], ARGV[3])
-- TIME only when something is counted: not for a late result.
local now, applied = nil, nil
if ARGV[17] ~= nil then
  now = now_ms(ARGV[1])
  applied = apply_successes(s, now, ARGV, 17, name)
end
local p = policy_from(ARGV, 9)
local failed = ARGV[8] == '1'
local permit = ARGV[7]
local json = nil
-- A late result (engine._current): another generation, or a ticket of an earlier incarnation
-- of the circuit (keys deleted or evicted since: a new epoch, generations from 0 again).
if ARGV[5] == s.epoch and tonumber(ARGV[6]) == s.generation then
  if s.state == 'closed' then
    json = record_closed(s, p, name, now or now_ms(ARGV[1]), failed)
  elseif permit ~= '' and s.state == 'half_open' then
    now = now or now_ms(ARGV[1])
    local expires = s.permits[permit]
    s.permits[permit] = nil
    if expires ~= nil and expires > now then
      if failed then
        s.consecutive_failures = s.consecutive_failures + 1
        json = trip(s, p, name, now, 'half_open')
      else
        s.consecutive_failures = 0
        s.half_open_successes = s.half_open_successes + 1
        if s.half_open_successes >= p.success_threshold then
          s.state = 'closed'
          clear_counters(s)
          json = transition(s, name, 'closed', 'half_open', now)
        end
      end
    end
  end
end
save(KEYS[1], s)
-- At most one of the two: a trip by a deferred success makes the ticket late.
local out = {}
for _, done in ipairs({applied or false, json or false}) do
  if done then
    publish(KEYS[2], tonumber(ARGV[4]), done)
    out[#out + 1] = done
  end
end
return out
