-- acquire: ask to run one call (engine.acquire).
-- KEYS[1] state hash, KEYS[2] outbox list.
-- ARGV[1] now ms ("" = server TIME), ARGV[2] circuit name, ARGV[3] epoch for a new hash
-- (never empty: a circuit's first acquire stores it), ARGV[4] outbox bound, ARGV[5] policy
-- half_open_max_calls, ARGV[6] policy permit_ttl_ms.
-- Returns {admitted (1|0), state, generation, permit ("" = none), retry_after_ms, epoch,
--          transition JSON...}; a rejection is returned as admitted 0 whatever the mode
-- (monitor mode is applied by the client).
local name = ARGV[2]
local s = load(KEYS[1], ARGV[3])
if s.state == 'closed' then
  -- No time needed and nothing to write, except on the first call of a circuit (or the first
  -- since its keys were lost): its epoch is born here, so that this ticket can never count
  -- against a later incarnation.
  if not s.orig.epoch then redis.call('HSET', KEYS[1], 'epoch', s.epoch) end
  return {1, 'closed', s.generation, '', 0, s.epoch}
end
local now = now_ms(ARGV[1])
local result
local transitions = {}
local rejected_after = nil
if s.state == 'open' then
  if now < s.open_until_ms then
    rejected_after = s.open_until_ms - now
  else
    s.state = 'half_open'
    s.permits = {}
    s.half_open_successes = 0
    transitions[1] = transition(s, name, 'half_opened', 'open', now)
  end
end
if rejected_after == nil then
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
if result == nil then
  result = {0, s.state, s.generation, '', math.max(0, rejected_after), s.epoch}
end
for _, json in ipairs(transitions) do
  publish(KEYS[2], tonumber(ARGV[4]), json)
  result[#result + 1] = json
end
save(KEYS[1], s)
return result
