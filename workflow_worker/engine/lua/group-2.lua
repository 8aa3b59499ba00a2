#!lua
-- Create groups (each a join hash and a record in state "waiting") and enqueue their first jobs,
-- in one atomic round trip, so no member can end before its group exists. Sent again (after a
-- lost reply, or by a re-delivered workflow asking for the same group), it finds the guard record
-- and writes nothing. Members carry no unique lock: the group's own id is what makes them unique.
-- No allow-oom flag: when Redis is full, producers are refused (backpressure).
-- KEYS[1] queue list
-- KEYS[2] delayed sorted set (job text -> due time, ms)
-- KEYS[3..] group hashes and status records, referenced by index from ARGV
-- ARGV[1] status record TTL, seconds (a delayed job's record, and every group's hash and
--         record, live the longest delay longer)
-- ARGV[2] index of the guard record: when it exists, nothing is written
-- ARGV[3] JSON array of groups, each [hash index, record index, {hash field: value},
--         {record field: value}]
-- ARGV[4] JSON array of jobs to enqueue now, each [job text, record index, delay ms,
--         {record field: value}]
-- ARGV[5] the queue's event channel: idle promoters hear of the earliest new delayed job
-- Output: 1 when created, 0 when the guard record existed (nothing written)
if redis.call('EXISTS', KEYS[tonumber(ARGV[2])]) == 1 then
  return 0
end
local ttl = tonumber(ARGV[1])
local groups = cjson.decode(ARGV[3])
local jobs = cjson.decode(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function hset(key, fields, extra)
  local flat = {}
  for name, value in pairs(fields) do
    flat[#flat + 1] = name
    flat[#flat + 1] = value
  end
  for i = 1, #extra do
    flat[#flat + 1] = extra[i]
  end
  redis.call('HSET', key, unpack(flat))
end
local longest = 0
local earliest = nil
for _, job in ipairs(jobs) do
  local text, skey, delay, status = job[1], KEYS[job[2]], job[3], job[4]
  local extra = {}
  if delay > 0 then
    local due = now + delay
    redis.call('ZADD', KEYS[2], due, text)
    extra = {'due_at', string.format('%.3f', due / 1000)}
    if not earliest or due < earliest then
      earliest = due
    end
    longest = math.max(longest, math.ceil(delay / 1000))
  else
    redis.call('LPUSH', KEYS[1], text)
  end
  hset(skey, status, extra)
  redis.call('EXPIRE', skey, ttl + math.ceil(delay / 1000))
end
for _, group in ipairs(groups) do
  local hkey, rkey = KEYS[group[1]], KEYS[group[2]]
  hset(hkey, group[3], {})
  hset(rkey, group[4], {})
  redis.call('EXPIRE', hkey, ttl + longest)
  redis.call('EXPIRE', rkey, ttl + longest)
end
if earliest then
  redis.call('PUBLISH', ARGV[5], 'due ' .. string.format('%d', earliest))
end
return 1
