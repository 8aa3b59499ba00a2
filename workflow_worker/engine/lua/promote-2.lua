#!lua flags=allow-oom
-- Move due jobs from the delayed set to the queue, atomically: each due job is moved exactly
-- once, whichever worker runs this.
-- KEYS[1] delayed sorted set (job text -> due time, ms)
-- KEYS[2] queue list
-- ARGV[1] how many jobs at most per call
-- Output: {jobs moved, ms until the next job is due (-1 when none is waiting)}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, raw in ipairs(due) do
  redis.call('ZREM', KEYS[1], raw)
  redis.call('LPUSH', KEYS[2], raw)
end
local next_due = -1
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if head[2] then
  next_due = math.max(0, tonumber(head[2]) - now)
end
return {#due, next_due}
