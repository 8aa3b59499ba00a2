-- Apply a batch of job state changes in one round trip. Every change is conditional on the
-- worker still holding the job's claim token, so a worker whose jobs were taken back (presumed
-- dead) can never reschedule or dead-letter a job that already runs elsewhere.
-- KEYS[1] processing hash (token -> job text)
-- KEYS[2] queue list
-- KEYS[3] delayed sorted set
-- KEYS[4] dead-letter list
-- KEYS[5] redeliveries hash (job id -> count)
-- KEYS[6..] status record hashes, referenced by index from the operations
-- ARGV[1] status record TTL, seconds
-- ARGV[2..] operations, each: kind, token, status key index (into KEYS), job id, arg, score,
--           field count, then that many field/value pairs for the status record.
--   kind "start":   if claimed, replace the processing entry with arg (when not empty)
--   kind "done":    release the claim
--   kind "retry":   release the claim and add arg (job text) to the delayed set at score (ms)
--   kind "dead":    release the claim and push arg (dead-letter entry) onto the dead list
--   kind "requeue": release the claim and push arg (job text) at the queue's consuming end
-- Output: one integer per operation: 1 when the claim was held, 0 when it was not
local ttl = tonumber(ARGV[1])
local out = {}
local i = 2
while i <= #ARGV do
  local kind, token = ARGV[i], ARGV[i + 1]
  local key = KEYS[tonumber(ARGV[i + 2])]
  local job_id, arg, score = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local nfields = tonumber(ARGV[i + 6])
  local held
  if kind == 'start' then
    held = redis.call('HEXISTS', KEYS[1], token)
    if held == 1 and arg ~= '' then
      redis.call('HSET', KEYS[1], token, arg)
    end
  else
    held = redis.call('HDEL', KEYS[1], token)
    if held == 1 then
      if kind == 'retry' then
        redis.call('ZADD', KEYS[3], tonumber(score), arg)
      elseif kind == 'dead' then
        redis.call('LPUSH', KEYS[4], arg)
      elseif kind == 'requeue' then
        redis.call('RPUSH', KEYS[2], arg)
      end
      if kind ~= 'requeue' and job_id ~= '' then
        redis.call('HDEL', KEYS[5], job_id)
      end
    end
  end
  if held == 1 and nfields > 0 then
    local fields = {}
    for f = 0, nfields * 2 - 1 do
      fields[#fields + 1] = ARGV[i + 7 + f]
    end
    redis.call('HSET', key, unpack(fields))
    redis.call('EXPIRE', key, ttl)
  end
  out[#out + 1] = held
  i = i + 7 + nfields * 2
end
return out
