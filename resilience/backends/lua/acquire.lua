-- acquire: ask to run one call (engine.acquire).
-- KEYS[1] state hash, KEYS[2] outbox list, KEYS[3] bulkhead slots (sorted set: slot id ->
-- lease expiry ms), KEYS[4] the not-closed index (absent in Cluster: see transition() in
-- common.lua).
-- ARGV[1] now ms ("" = server TIME), ARGV[2] circuit name, ARGV[3] epoch for a new hash
-- (never empty: a circuit's first acquire stores it), ARGV[4] outbox bound, ARGV[5] policy
-- half_open_max_calls, ARGV[6] policy permit_ttl_ms, ARGV[7] policy max_concurrent_calls,
-- ARGV[8] policy slot_lease_ms (0 = calls are not tracked: no slot), ARGV[9] policy
-- deadline_ms, ARGV[10] the slot id this call takes if admitted, ARGV[11] monitor mode (1|0),
-- ARGV[12..] slots of this client's calls that ended meanwhile, given back first.
-- Returns {admitted (1|0), state, generation, permit ("" = none), retry_after_ms, epoch,
--          slot ("" = none), over_cap (1|0), failure_free (1|0: the window holds no failure;
--          the client then defers successes under a rate rule), transition JSON...}; a
-- rejection by the circuit
-- is returned as admitted 0 whatever the mode (monitor mode is applied by the client); a
-- full bulkhead refuses with state 'bulkhead_full' unless in monitor mode, where the call
-- takes a slot anyway and over_cap is 1.
local name = ARGV[2]
local lease = tonumber(ARGV[8] or '0')
if #ARGV >= 12 then redis.call('ZREM', KEYS[3], unpack(ARGV, 12)) end
local s = load(KEYS[1], ARGV[3])
if s.state == 'closed' and lease == 0 then
  -- No time needed and nothing to write, except on the first call of a circuit (or the first
  -- since its keys were lost): its epoch is born here, so that this ticket can never count
  -- against a later incarnation.
  if not s.orig.epoch then redis.call('HSET', KEYS[1], 'epoch', s.epoch) end
  return {1, 'closed', s.generation, '', 0, s.epoch, '', 0, (s.win_failures == 0) and 1 or 0}
end
local now = now_ms(ARGV[1])
local result
local transitions = {}
local rejected_after = nil
local over_cap = 0
if s.state == 'open' and now < s.open_until_ms then
  rejected_after = s.open_until_ms - now
elseif lease > 0 then
  -- engine._acquire_tracked: lapsed leases go first, then the cap, before any transition.
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  local cap = tonumber(ARGV[7])
  if cap > 0 and redis.call('ZCARD', KEYS[3]) >= cap then
    if ARGV[11] ~= '1' then
      local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
      local deadline = tonumber(ARGV[9])
      if deadline <= 0 then deadline = 1000 end
      local wait = math.max(0, math.min(tonumber(first[2]) - now, deadline))
      save(KEYS[1], s)
      return {0, 'bulkhead_full', s.generation, '', wait, s.epoch, '', 0, 0}
    end
    over_cap = 1
  end
end
if rejected_after == nil then
  if s.state == 'closed' then
    result = {1, 'closed', s.generation, '', 0, s.epoch}
  else
    if s.state == 'open' then
      s.state = 'half_open'
      s.permits = {}
      s.half_open_successes = 0
      transitions[1] = transition(s, name, 'half_opened', 'open', now)
    end
    local live, earliest = 0, nil
    for permit, expires in pairs(s.permits) do
      if expires <= now then
        s.permits[permit] = nil
      else
        live = live + 1
        if earliest == nil or expires < earliest then earliest = expires end
      end
    end
    if live < tonumber(ARGV[5]) then
      s.permit_seq = s.permit_seq + 1
      local permit = 'p' .. int(s.permit_seq)
      s.permits[permit] = now + tonumber(ARGV[6])
      result = {1, 'half_open', s.generation, permit, 0, s.epoch}
    else
      rejected_after = (earliest or now) - now
    end
  end
end
if result == nil then
  result = {0, s.state, s.generation, '', math.max(0, rejected_after), s.epoch, '', 0, 0}
else
  if lease > 0 then
    redis.call('ZADD', KEYS[3], now + lease, ARGV[10])
    result[7] = ARGV[10]
    result[8] = over_cap
  else
    result[7] = ''
    result[8] = 0
  end
  result[9] = (s.win_failures == 0) and 1 or 0
end
for _, json in ipairs(transitions) do
  publish(KEYS[2], tonumber(ARGV[4]), json)
  result[#result + 1] = json
end
save(KEYS[1], s)
return result
