-- Remove the load-test jobs that still wait, atomically, keeping every other job in its place.
-- A job is a load-test job when its envelope or its payload has the field ARGV[1] set to true.
-- KEYS[1] queue list
-- KEYS[2] delayed sorted set (retries and delayed jobs)
-- ARGV[1] marker field name ("loadtest")
-- Output: {jobs removed from the queue, jobs removed from the delayed set}
local function marked(raw)
  local ok, job = pcall(cjson.decode, raw)
  if not ok or type(job) ~= 'table' then
    return false
  end
  if job[ARGV[1]] == true then
    return true
  end
  return type(job.payload) == 'table' and job.payload[ARGV[1]] == true
end

local kept, removed = {}, 0
for _, raw in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if marked(raw) then
    removed = removed + 1
  else
    kept[#kept + 1] = raw
  end
end
if removed > 0 then
  redis.call('DEL', KEYS[1])
  -- unpack() has a stack limit, so the survivors go back in chunks, in their original order.
  for i = 1, #kept, 1000 do
    redis.call('RPUSH', KEYS[1], unpack(kept, i, math.min(i + 999, #kept)))
  end
end

local delayed = 0
for _, raw in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if marked(raw) then
    redis.call('ZREM', KEYS[2], raw)
    delayed = delayed + 1
  end
end
return {removed, delayed}
