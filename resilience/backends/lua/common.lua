-- Shared helpers, prepended to every operation script by resilience/backends/redis.py.
-- A circuit is one hash whose fields are documented in resilience/engine_types.py
-- (CircuitState); every function here mirrors the function of the same name in
-- resilience/engine.py exactly, so that Redis and memory backends agree call for call.
-- All numbers stored or returned are integers (epoch milliseconds, counters).

local BUCKETS = 10
local RUN_TIMES = 32  -- engine_types.RUN_TIMES
local SCALARS = {'state', 'epoch', 'generation', 'consecutive_failures', 'trips',
                 'opened_at_ms', 'open_until_ms', 'half_open_successes', 'permit_seq',
                 'bucket_ms', 'win_head', 'win_calls', 'win_failures'}

local function int(x)
  return string.format('%.0f', x)
end

-- Milliseconds since the epoch: the caller's clock when it passed one, else the server's.
local function now_ms(arg)
  if arg ~= nil and arg ~= '' then
    return tonumber(arg)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Every field but the permits, in the order load() reads them.
local FIELDS = {}
for _, name in ipairs(SCALARS) do FIELDS[#FIELDS + 1] = name end
FIELDS[#FIELDS + 1] = 'run'
for i = 0, BUCKETS - 1 do
  FIELDS[#FIELDS + 1] = 'c' .. i
  FIELDS[#FIELDS + 1] = 'f' .. i
end

-- The hash as a table; `orig` keeps the raw fields so that save() writes only what changed.
-- One HMGET reads it; the permit fields (permit:<id>) exist only while half-open, so only then
-- is the whole hash read to find them.
local function load(key, epoch)
  local raw = redis.call('HMGET', key, unpack(FIELDS))
  local s = {state = 'closed', epoch = epoch, generation = 0, consecutive_failures = 0,
             trips = 0, opened_at_ms = 0, open_until_ms = 0, half_open_successes = 0,
             permit_seq = 0, bucket_ms = 0, win_head = 0, win_calls = 0, win_failures = 0,
             run = {}, calls = {}, failures = {}, permits = {}, orig = {}}
  for i = 0, BUCKETS - 1 do
    s.calls[i] = 0
    s.failures[i] = 0
  end
  for i, k in ipairs(FIELDS) do
    local v = raw[i]
    if v then
      s.orig[k] = v
      if k == 'state' or k == 'epoch' then
        s[k] = v
      elseif k == 'run' then
        for t in string.gmatch(v, '[^,]+') do s.run[#s.run + 1] = tonumber(t) end
      else
        local kind, slot = string.match(k, '^([cf])(%d)$')
        if kind == 'c' then
          s.calls[tonumber(slot)] = tonumber(v)
        elseif kind == 'f' then
          s.failures[tonumber(slot)] = tonumber(v)
        else
          s[k] = tonumber(v)
        end
      end
    end
  end
  if s.state == 'half_open' then
    local all = redis.call('HGETALL', key)
    for i = 1, #all, 2 do
      local k = all[i]
      if string.sub(k, 1, 7) == 'permit:' then
        s.orig[k] = all[i + 1]
        s.permits[string.sub(k, 8)] = tonumber(all[i + 1])
      end
    end
  end
  return s
end

local function save(key, s)
  local set, del = {}, {}
  local function put(k, v)
    if s.orig[k] ~= v then
      set[#set + 1] = k
      set[#set + 1] = v
    end
  end
  for _, name in ipairs(SCALARS) do
    local v = s[name]
    if type(v) == 'number' then v = int(v) end
    put(name, v)
  end
  for i = 0, BUCKETS - 1 do
    put('c' .. i, int(s.calls[i]))
    put('f' .. i, int(s.failures[i]))
  end
  local run = {}
  for j, t in ipairs(s.run) do run[j] = int(t) end
  run = table.concat(run, ',')
  if (s.orig.run or '') ~= run then
    set[#set + 1] = 'run'
    set[#set + 1] = run
  end
  for k, _ in pairs(s.orig) do
    if string.sub(k, 1, 7) == 'permit:' and s.permits[string.sub(k, 8)] == nil then
      del[#del + 1] = k
    end
  end
  for permit, expires in pairs(s.permits) do
    put('permit:' .. permit, int(expires))
  end
  if #del > 0 then redis.call('HDEL', key, unpack(del)) end
  if #set > 0 then redis.call('HSET', key, unpack(set)) end
end

local function clear_window(s, bucket_ms)
  s.bucket_ms = bucket_ms
  s.win_head, s.win_calls, s.win_failures = 0, 0, 0
  for i = 0, BUCKETS - 1 do
    s.calls[i] = 0
    s.failures[i] = 0
  end
end

local function clear_counters(s)
  clear_window(s, s.bucket_ms)
  s.consecutive_failures, s.trips, s.half_open_successes = 0, 0, 0
  s.run = {}
  s.opened_at_ms, s.open_until_ms = 0, 0
  s.permits = {}
end

local function roll(s, index)
  if index - s.win_head >= BUCKETS then
    clear_window(s, s.bucket_ms)
  else
    for i = s.win_head + 1, index do
      local slot = i % BUCKETS
      s.win_calls = s.win_calls - s.calls[slot]
      s.win_failures = s.win_failures - s.failures[slot]
      s.calls[slot], s.failures[slot] = 0, 0
    end
  end
  s.win_head = index
end

-- Python's repr() of a float: the shortest of %.15g/%.16g/%.17g that reads back exactly.
local function float_repr(x)
  local text
  for precision = 15, 17 do
    text = string.format('%.' .. precision .. 'g', x)
    if tonumber(text) == x then break end
  end
  if not string.find(text, '[%.eEn]') then text = text .. '.0' end
  return text
end

-- The index of circuits not closed (docs/redis.md, "The not-closed index"): a hash circuit
-- name -> state, passed as KEYS[4] to the scripts that make transitions (acquire, record,
-- reset). Absent in Redis Cluster, where it lives in another hash slot than the circuit: the
-- client that receives the transition updates it there.
local function index_state(s, name)
  local index = KEYS[4]
  if index == nil then return end
  if s.state == 'closed' then
    redis.call('HDEL', index, name)
  else
    redis.call('HSET', index, name, s.state)
  end
end

-- Bump the generation and describe the change as Transition.to_json() would (sorted keys);
-- every transition also goes into the not-closed index.
local function transition(s, name, kind, from_state, now)
  index_state(s, name)
  s.generation = s.generation + 1
  local calls = s.win_calls
  local rate = 'null'
  if calls ~= 0 then rate = float_repr(s.win_failures * 100 / calls) end
  local retry = 0
  if s.state == 'open' then retry = math.max(0, s.open_until_ms - now) end
  return '{"at_ms":' .. int(now)
    .. ',"circuit":' .. cjson.encode(name)
    .. ',"failure_count":' .. int(math.max(s.consecutive_failures, s.win_failures))
    .. ',"failure_rate":' .. rate
    .. ',"from_state":"' .. from_state .. '"'
    .. ',"generation":' .. int(s.generation)
    .. ',"id":' .. cjson.encode(s.epoch .. ':' .. int(s.generation))
    .. ',"kind":"' .. kind .. '"'
    .. ',"retry_after_ms":' .. int(retry)
    .. ',"to_state":"' .. s.state .. '"}'
end

-- Append to the bounded outbox; the same JSON goes back to the one caller that made it.
local function publish(outbox_key, outbox_max, json)
  if redis.call('RPUSH', outbox_key, json) > outbox_max then
    redis.call('LTRIM', outbox_key, -outbox_max, -1)
  end
end

local function open_duration_ms(recovery_timeout, multiplier, max_recovery_timeout, trips)
  local seconds = recovery_timeout
  if trips > 1 and multiplier ~= 1 then
    seconds = seconds * multiplier ^ (trips - 1)
  end
  return math.floor(math.min(seconds, max_recovery_timeout) * 1000)
end

-- p = {failure_threshold, failure_rate_threshold, minimum_calls, bucket_ms,
--      recovery_timeout, backoff_multiplier, max_recovery_timeout, success_threshold}
local function trip(s, p, name, now, from_state)
  s.state = 'open'
  s.trips = s.trips + 1
  s.opened_at_ms = now
  s.open_until_ms = now + open_duration_ms(p.recovery_timeout, p.backoff_multiplier,
                                           p.max_recovery_timeout, s.trips)
  s.permits = {}
  s.half_open_successes = 0
  return transition(s, name, 'opened', from_state, now)
end

-- engine._end_run: a closed success dated `at` ends the run of failures dated at or before it.
local function end_run(s, at)
  if #s.run == 0 then
    s.consecutive_failures = 0
    return
  end
  local later = {}
  for _, t in ipairs(s.run) do
    if t > at then later[#later + 1] = t end
  end
  if #later < #s.run then
    s.run = later
    s.consecutive_failures = #later
  end
end

-- engine._record_closed; returns a transition JSON or nil.
local function record_closed(s, p, name, now, failed)
  if s.bucket_ms ~= p.bucket_ms then clear_window(s, p.bucket_ms) end
  local index = math.floor(now / s.bucket_ms)
  if index > s.win_head then roll(s, index) end
  local slot = s.win_head % BUCKETS
  s.calls[slot] = s.calls[slot] + 1
  s.win_calls = s.win_calls + 1
  if failed then
    s.failures[slot] = s.failures[slot] + 1
    s.win_failures = s.win_failures + 1
    s.consecutive_failures = s.consecutive_failures + 1
    local keep = math.min(RUN_TIMES, math.max(1, p.failure_threshold)) - 1
    local run = {}
    for j = math.max(1, #s.run - keep + 1), #s.run do run[#run + 1] = s.run[j] end
    run[#run + 1] = now
    s.run = run
    if p.failure_threshold > 0 and s.consecutive_failures >= p.failure_threshold then
      return trip(s, p, name, now, 'closed')
    end
  else
    end_run(s, now)
  end
  local rate = p.failure_rate_threshold
  if rate > 0 and s.win_calls >= p.minimum_calls
      and s.win_failures * 100 >= rate * s.win_calls then
    return trip(s, p, name, now, 'closed')
  end
  return nil
end

-- A policy sent as 8 arguments from args[i] (redis_local.policy_args): failure_threshold,
-- failure_rate_threshold, minimum_calls, bucket_ms, recovery_timeout, backoff_multiplier,
-- max_recovery_timeout, success_threshold.
local function policy_from(args, i)
  return {failure_threshold = tonumber(args[i]), failure_rate_threshold = tonumber(args[i + 1]),
          minimum_calls = tonumber(args[i + 2]), bucket_ms = tonumber(args[i + 3]),
          recovery_timeout = tonumber(args[i + 4]), backoff_multiplier = tonumber(args[i + 5]),
          max_recovery_timeout = tonumber(args[i + 6]), success_threshold = tonumber(args[i + 7])}
end

-- Closed-state successes this client deferred (see "Deferred successes" in docs/redis.md),
-- applied before the operation as engine.record() would have applied them one by one.
-- args[i]: epoch and args[i+1]: generation of their tickets, args[i+2..i+9]: their policy
-- (see policy_from), args[i+10]: count of (time, n) pairs, then the pairs; time is absolute
-- epoch ms, or "-<age ms>" relative to `now` when the server clock is used. Successes of
-- another generation or epoch are dropped (late). Under a failure-rate rule a success can
-- trip the circuit (other processes' failures may have arrived meanwhile): the one that
-- reaches minimum_calls, or the first when that is reached already (later ones only lower the
-- rate), is judged as engine._record_closed judges it, and the rest are then late. Each
-- success ends only the failures of the run dated at or before its own time (end_run): a
-- success that lands after a later run of failures leaves that run counted.
-- Returns the transition JSON of such a trip, or nil.
local function apply_successes(s, now, args, i, name)
  local epoch, generation = args[i], tonumber(args[i + 1])
  local p = policy_from(args, i + 2)
  local pairs_count = tonumber(args[i + 10])
  local live = s.state == 'closed' and epoch == s.epoch and generation == s.generation
  local json = nil
  for j = 0, pairs_count - 1 do
    local at, n = args[i + 11 + 2 * j], tonumber(args[i + 12 + 2 * j])
    if live then
      if string.sub(at, 1, 1) == '-' then at = now + tonumber(at) else at = tonumber(at) end
      if s.bucket_ms ~= p.bucket_ms then clear_window(s, p.bucket_ms) end
      local index = math.floor(at / s.bucket_ms)
      if index > s.win_head then roll(s, index) end
      local rate, trips = p.failure_rate_threshold, false
      if rate > 0 then
        local k = math.max(1, p.minimum_calls - s.win_calls)
        if k <= n and s.win_failures * 100 >= rate * (s.win_calls + k) then
          n, trips = k, true
        end
      end
      local slot = s.win_head % BUCKETS
      s.calls[slot] = s.calls[slot] + n
      s.win_calls = s.win_calls + n
      end_run(s, at)
      if trips then
        json = trip(s, p, name, at, 'closed')
        live = false
      end
    end
  end
  return json
end
