-- reset: close the circuit and clear its counters (engine.reset).
-- KEYS[1] state hash, KEYS[2] outbox list, KEYS[3] bulkhead slots (unused here), KEYS[4] the
-- not-closed index (absent in Cluster; written by transition(), see common.lua index_state).
-- ARGV[1] now ms ("" = server TIME), ARGV[2] circuit name, ARGV[3] epoch for a new hash,
-- ARGV[4] outbox bound, ARGV[5..] optional deferred successes (see apply_successes), applied
-- first so that the hash ends up exactly as in memory.
-- Returns {transition JSON}: exactly one "reset" transition, after the "opened" of a deferred
-- success that tripped the circuit first (see apply_successes), if one did.
local now = now_ms(ARGV[1])
local s = load(KEYS[1], ARGV[3])
local out = {}
if ARGV[5] ~= nil then
  local opened = apply_successes(s, now, ARGV, 5, ARGV[2])
  if opened then out[1] = opened end
end
local from_state = s.state
s.state = 'closed'
clear_counters(s)
out[#out + 1] = transition(s, ARGV[2], 'reset', from_state, now)
save(KEYS[1], s)
for _, json in ipairs(out) do publish(KEYS[2], tonumber(ARGV[4]), json) end
return out
