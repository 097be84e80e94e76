-- ack: drop persisted transitions from a circuit's outbox.
-- KEYS[1] outbox list.
-- ARGV[1..n] transition ids.
-- Returns the number of entries removed.
local wanted = {}
for i = 1, #ARGV do wanted[ARGV[i]] = true end
local removed = 0
for _, json in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local ok, entry = pcall(cjson.decode, json)
  if not ok or (type(entry) == 'table' and wanted[entry.id]) then
    removed = removed + redis.call('LREM', KEYS[1], 1, json)
  end
end
return removed
