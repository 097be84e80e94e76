-- renew: extend the bulkhead slot leases of calls still running (engine.renew_slots).
-- KEYS[1] bulkhead slots (sorted set: slot id -> lease expiry ms).
-- ARGV[1] now ms ("" = server TIME), ARGV[2] slot_lease_ms, ARGV[3..] slot ids.
-- Returns how many were renewed: a lapsed slot is not taken back (XX), since its place may
-- be another call's by now.
local now = now_ms(ARGV[1])
local expires = now + tonumber(ARGV[2])
local renewed = 0
for i = 3, #ARGV do
  renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', expires, ARGV[i])
end
return renewed
