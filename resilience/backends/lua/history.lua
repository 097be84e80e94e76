-- history: add one 10-second bucket's counts of one circuit to its outcome history
-- (Backend.store_history; the layout is resilience/series.py's, docs/history.md).
-- KEYS[1] the circuit's hash of 10-second buckets of this bucket's chunk, KEYS[2] its hash of
-- 1-minute buckets of this bucket's chunk, KEYS[3] its totals hash (fields v, at).
-- ARGV[1] the field of the 10-second bucket in KEYS[1], ARGV[2] of the 1-minute one in KEYS[2],
-- ARGV[3] ms until KEYS[1] is forgotten, ARGV[4] the same for KEYS[2], ARGV[5] for KEYS[3],
-- ARGV[6] the writer's time in ms (the totals' "at"), ARGV[7] the counts (series.encode:
-- decimal, comma-separated, zeros empty).
-- Returns 1.
local function decode(text)
  local v = {}
  if text then
    local i = 1
    for part in string.gmatch(text .. ',', '([^,]*),') do
      v[i] = tonumber(part) or 0
      i = i + 1
    end
  end
  return v
end

local function add_encoded(text, delta)
  local v = decode(text)
  local parts, last = {}, 0
  for i = 1, math.max(#v, #delta) do
    local sum = (v[i] or 0) + (delta[i] or 0)
    if sum ~= 0 then
      parts[i] = int(sum)
      last = i
    else
      parts[i] = ''
    end
  end
  return table.concat(parts, ',', 1, last)
end

local delta = decode(ARGV[7])
for k = 1, 2 do
  local old = redis.call('HGET', KEYS[k], ARGV[k])
  redis.call('HSET', KEYS[k], ARGV[k], add_encoded(old, delta))
  redis.call('PEXPIRE', KEYS[k], ARGV[k + 2])
end
local old = redis.call('HGET', KEYS[3], 'v')
redis.call('HSET', KEYS[3], 'v', add_encoded(old, delta), 'at', ARGV[6])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
return 1
