#!lua
-- Add child job ids to a parent job's status record (field `children`, a JSON array), each once.
-- KEYS[1] the parent's status record hash
-- ARGV[1] status record TTL, seconds (the record lives at least this long after the change)
-- ARGV[2..] child ids, in the order the parent created them
-- Output: the number of children the record lists
local raw = redis.call('HGET', KEYS[1], 'children')
local children = {}
if raw then
  children = cjson.decode(raw)
end
local seen = {}
for _, id in ipairs(children) do
  seen[id] = true
end
for i = 2, #ARGV do
  if not seen[ARGV[i]] then
    children[#children + 1] = ARGV[i]
    seen[ARGV[i]] = true
  end
end
redis.call('HSET', KEYS[1], 'children', cjson.encode(children))
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) * 1000 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return #children
