-- Apply a batch of job state changes in one round trip. Every change is conditional on the
-- worker still holding the job's claim token, so a worker whose jobs were taken back (presumed
-- dead) can never reschedule or dead-letter a job that already runs elsewhere.
-- KEYS[1] processing hash (token -> job text)
-- KEYS[2] queue list
-- KEYS[3] delayed sorted set
-- KEYS[4] dead-letter list
-- KEYS[5] redeliveries hash (job id -> count)
-- KEYS[6..] status records, unique-key locks and cancel requests, referenced by index from ops
-- ARGV[1] status record TTL, seconds
-- ARGV[2] JSON array of operations, each [kind, token, status key index, job id, arg, score,
--         {status field: value, ...}, unique lock index, cancel request index] (index 0: none);
--         one argument, so the client encodes one string per batch
--   kind "start":   if claimed and no cancel request stands, write the running status and
--                   replace the processing entry with arg (when not empty)
--   kind "done":    release the claim (final: frees the unique lock, clears the cancel request)
--   kind "retry":   release the claim and add arg (job text) to the delayed set at score (ms)
--   kind "dead":    release the claim and push arg (dead-letter entry) onto the dead list (final)
--   kind "requeue": release the claim and push arg (job text) at the queue's consuming end
--   kind "defer":   release the claim and add arg (job text) to the delayed set at score (ms);
--                   unlike "retry" it is not a failure (a rate limit said "later")
-- Output: one integer per operation: 1 when the claim was held, 0 when it was not, 2 for a
--         "start" whose job has a cancel request (nothing was written)
local ttl = tonumber(ARGV[1])
local ops = cjson.decode(ARGV[2])
local out = {}
for n, op in ipairs(ops) do
  local kind, token, key = op[1], op[2], KEYS[op[3]]
  local job_id, arg, score, status = op[4], op[5], op[6], op[7]
  local unique, cancel = op[8], op[9]
  local held
  if kind == 'start' then
    held = redis.call('HEXISTS', KEYS[1], token)
    if held == 1 and cancel ~= 0 and redis.call('EXISTS', KEYS[cancel]) == 1 then
      held = 2
    elseif held == 1 and arg ~= '' then
      redis.call('HSET', KEYS[1], token, arg)
    end
  else
    held = redis.call('HDEL', KEYS[1], token)
    if held == 1 then
      if kind == 'retry' or kind == 'defer' then
        redis.call('ZADD', KEYS[3], score, arg)
      elseif kind == 'dead' then
        redis.call('LPUSH', KEYS[4], arg)
      elseif kind == 'requeue' then
        redis.call('RPUSH', KEYS[2], arg)
      end
      if kind ~= 'requeue' and kind ~= 'defer' and job_id ~= '' then
        redis.call('HDEL', KEYS[5], job_id)
      end
      if kind == 'done' or kind == 'dead' then
        if unique ~= 0 and redis.call('GET', KEYS[unique]) == job_id then
          redis.call('DEL', KEYS[unique])
        end
        if cancel ~= 0 then
          redis.call('DEL', KEYS[cancel])
        end
      end
    end
  end
  if held == 1 and next(status) ~= nil then
    local fields = {}
    for name, value in pairs(status) do
      fields[#fields + 1] = name
      fields[#fields + 1] = value
    end
    redis.call('HSET', key, unpack(fields))
    redis.call('EXPIRE', key, ttl)
  end
  out[n] = held
end
return out
