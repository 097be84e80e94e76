-- reset: close the circuit and clear its counters (engine.reset).
-- KEYS[1] state hash, KEYS[2] outbox list.
-- ARGV[1] now ms ("" = server TIME), ARGV[2] circuit name, ARGV[3] epoch for a new hash,
-- ARGV[4] outbox bound, ARGV[5..] optional deferred successes (see apply_successes), applied
-- first so that the hash ends up exactly as in memory.
-- Returns {transition JSON}: always exactly one "reset" transition.
local now = now_ms(ARGV[1])
local s = load(KEYS[1], ARGV[3])
if ARGV[5] ~= nil then apply_successes(s, now, ARGV, 5) end
local from_state = s.state
s.state = 'closed'
clear_counters(s)
local json = transition(s, ARGV[2], 'reset', from_state, now)
save(KEYS[1], s)
publish(KEYS[2], tonumber(ARGV[4]), json)
return {json}
