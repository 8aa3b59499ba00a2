-- Enqueue jobs with their "queued" (or "delayed") status records, honouring unique keys, in one
-- atomic round trip.
-- KEYS[1] queue list
-- KEYS[2] delayed sorted set (job text -> due time, ms)
-- KEYS[3..] status record hashes and unique-key locks, referenced by index from the jobs
-- ARGV[1] status record TTL, seconds (also the longest a unique lock can outlive a lost job)
-- ARGV[2] JSON array of jobs, each [job text, job id, status key index, unique lock index
--         (0 = none), due time ms (0 = now), {status field: value}]
-- ARGV[3] the queue's event channel: idle promoters hear of the earliest new delayed job
-- Output: per job, "" when it was enqueued, or the id of the job that holds its unique key
--         (then nothing was written for it)
local ttl = tonumber(ARGV[1])
local jobs = cjson.decode(ARGV[2])
local out = {}
local earliest = nil
for n, job in ipairs(jobs) do
  local text, id, skey, ukey, due, status = job[1], job[2], KEYS[job[3]], job[4], job[5], job[6]
  local owner = false
  if ukey ~= 0 then
    if not redis.call('SET', KEYS[ukey], id, 'NX', 'EX', ttl) then
      owner = redis.call('GET', KEYS[ukey]) or ''
    end
  end
  if owner then
    out[n] = owner
  else
    if due > 0 then
      redis.call('ZADD', KEYS[2], due, text)
      if not earliest or due < earliest then
        earliest = due
      end
    else
      redis.call('LPUSH', KEYS[1], text)
    end
    local fields = {}
    for name, value in pairs(status) do
      fields[#fields + 1] = name
      fields[#fields + 1] = value
    end
    redis.call('HSET', skey, unpack(fields))
    redis.call('EXPIRE', skey, ttl)
    out[n] = ''
  end
end
if earliest then
  redis.call('PUBLISH', ARGV[3], 'due ' .. string.format('%d', earliest))
end
return out
