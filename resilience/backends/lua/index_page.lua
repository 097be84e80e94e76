-- index_page: bring a page of circuits into the not-closed index (its repair, page by page).
-- KEYS[1] the index (hash circuit name -> state), KEYS[2..n+1] the circuits' state hashes.
-- ARGV[1..n] the circuits' names.
-- Returns {name, state, ...} of those found not closed; the others leave the index.
local found = {}
for i = 2, #KEYS do
  local state = redis.call('HGET', KEYS[i], 'state')
  local name = ARGV[i - 1]
  if state and state ~= 'closed' then
    redis.call('HSET', KEYS[1], name, state)
    found[#found + 1] = name
    found[#found + 1] = state
  else
    redis.call('HDEL', KEYS[1], name)
  end
end
return found
