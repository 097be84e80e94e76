-- advance: open -> half-open once the open time has passed, without a call (engine.advance).
-- KEYS[1] state hash, KEYS[2] outbox list, KEYS[3] bulkhead slots (unused), KEYS[4] the
-- not-closed index (absent in Cluster).
-- ARGV[1] now ms ("" = server TIME), ARGV[2] circuit name, ARGV[3] outbox bound.
-- Returns {transition JSON} when it moved the circuit, else {}.
local s = load(KEYS[1], '')
if s.state ~= 'open' then return {} end
local now = now_ms(ARGV[1])
if now < s.open_until_ms then return {} end
s.state = 'half_open'
s.permits = {}
s.half_open_successes = 0
local json = transition(s, ARGV[2], 'half_opened', 'open', now)
publish(KEYS[2], tonumber(ARGV[3]), json)
save(KEYS[1], s)
return {json}
