#!lua
-- Enqueue jobs with their "queued" (or "delayed") status records, honouring unique keys, in one
-- atomic round trip. Due times are this server's clock plus the delay, so a producer whose clock
-- is off still gets the delay it asked for. Sent again after a lost reply (same call id), the
-- call finds its own records and enqueues nothing twice.
-- No allow-oom flag: when Redis is full, producers are refused (backpressure) while workers,
-- whose scripts are allowed, drain it.
-- KEYS[1] queue list
-- KEYS[2] delayed sorted set (job text -> due time, ms)
-- KEYS[3..] status record hashes and unique-key locks, referenced by index from the jobs
-- ARGV[1] status record TTL, seconds (also the longest a unique lock can outlive a lost job);
--         a delayed job's record and lock live its delay longer
-- ARGV[2] JSON array of jobs, each [job text, job id, status key index, unique lock index
--         (0 = none), delay ms (0 = now), {status field: value}, expires ms (optional)];
--         with expires ms, the text gets "expires_at" (Unix seconds on this server's clock, that
--         many ms from now) as its first field, and the status record gets it too
-- ARGV[3] the queue's event channel: idle promoters hear of the earliest new delayed job
-- ARGV[4] this call's id (random, one per call)
-- ARGV[5] index in KEYS of the recent-jobs sorted set (job id -> last change, ms; 0 = none)
-- ARGV[6] how many job ids the recent-jobs set keeps (the oldest are trimmed)
-- Output: per job, "" when it was enqueued (by this call), or the id of the job that holds its
--         unique key (then nothing was written for it)
local ttl = tonumber(ARGV[1])
local jobs = cjson.decode(ARGV[2])
local call = ARGV[4]
local recent = tonumber(ARGV[5] or '0') or 0
recent = recent > 0 and KEYS[recent] or nil
local clock = nil
local function now()
  if not clock then
    local t = redis.call('TIME')
    clock = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return clock
end
local out = {}
local earliest = nil
for n, job in ipairs(jobs) do
  local text, id, skey, ukey, delay, status = job[1], job[2], KEYS[job[3]], job[4], job[5], job[6]
  local life = ttl + math.ceil(delay / 1000)
  if redis.call('HGET', skey, 'enqueue_call') == call then
    out[n] = ''
  else
    local owner = false
    if ukey ~= 0 and not redis.call('SET', KEYS[ukey], id, 'NX', 'EX', life) then
      owner = redis.call('GET', KEYS[ukey]) or ''
    end
    if owner then
      out[n] = owner
    else
      local fields = {'enqueue_call', call}
      if job[7] then
        local expires_at = string.format('%.3f', (now() + job[7]) / 1000)
        text = '{"expires_at":' .. expires_at .. ',' .. string.sub(text, 2)
        fields[#fields + 1] = 'expires_at'
        fields[#fields + 1] = expires_at
      end
      for name, value in pairs(status) do
        fields[#fields + 1] = name
        fields[#fields + 1] = value
      end
      if delay > 0 then
        local due = now() + delay
        redis.call('ZADD', KEYS[2], due, text)
        fields[#fields + 1] = 'due_at'
        fields[#fields + 1] = string.format('%.3f', due / 1000)
        if not earliest or due < earliest then
          earliest = due
        end
      else
        redis.call('LPUSH', KEYS[1], text)
      end
      redis.call('HSET', skey, unpack(fields))
      redis.call('EXPIRE', skey, life)
      if recent then
        redis.call('ZADD', recent, now(), id)
      end
      out[n] = ''
    end
  end
end
if recent then
  redis.call('ZREMRANGEBYRANK', recent, 0, -tonumber(ARGV[6]) - 1)
end
if earliest then
  redis.call('PUBLISH', ARGV[3], 'due ' .. string.format('%d', earliest))
end
return out
