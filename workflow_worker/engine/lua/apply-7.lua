#!lua flags=allow-oom
-- Apply a batch of job state changes in one round trip. Every change is conditional on the
-- worker still holding the job's claim token, so a worker whose jobs were taken back (presumed
-- dead) can never reschedule or dead-letter a job that already runs elsewhere.
-- Flags: allow-oom, so a Redis that is full still takes acknowledgements, which free memory.
-- KEYS[1] processing hash (token -> job text)
-- KEYS[2] queue list
-- KEYS[3] delayed sorted set
-- KEYS[4] dead-letter list
-- KEYS[5] redeliveries hash (job id -> count)
-- KEYS[6] workers sorted set (worker id -> lease expiry, ms)
-- KEYS[7] dead-letter blobs hash (claim token -> text too large to keep in the entry)
-- KEYS[8..] status records, unique-key locks and cancel requests, referenced by index from ops
-- ARGV[1] status record TTL, seconds
-- ARGV[2] JSON array of operations, each [kind, token, status key index, job id, arg, delay ms,
--         {status field: value, ...}, unique lock index, cancel request index, extra seconds,
--         and, only for a group member's final op, its group end (see group_end below)]
--         (index 0: none, and nothing is written there); one argument, so the client encodes one
--         string per batch
--   kind "start":   if claimed and no cancel request stands, write the running status and
--                   replace the processing entry with arg (when not empty); the status record and
--                   the unique lock live TTL + extra seconds (the job's timeout)
--   kind "done":    release the claim (final: frees the unique lock, clears the cancel request)
--   kind "retry":   release the claim and add arg (job text) to the delayed set, due in delay ms
--                   on this server's clock; record and lock live TTL + extra seconds (the delay)
--   kind "dead":    release the claim and push arg (dead-letter entry) onto the dead list (final)
--   kind "bury":    as "dead", and the claimed text moves to the blobs hash under its token
--                   (a text too large to embed in the entry)
--   kind "requeue": release the claim and push arg (job text) at the queue's consuming end
--   kind "defer":   as "retry", but not a failure (a rate limit said "later")
--   kind "progress": if claimed, write the status fields (progress and progress_message, or
--                   the durable step now running) and nothing else
-- ARGV[3] "1" when a claim that is gone while its worker's lease is live means this op was
--         applied already by an earlier send whose reply was lost (the batcher); "0" otherwise
-- ARGV[4] index in KEYS of the recent-jobs sorted set (job id -> last change, ms; 0 = none):
--         every status write of a job with a record moves the job to its front
-- ARGV[5] how many job ids the recent-jobs set keeps (the oldest are trimmed)
-- Output: one integer per operation: 1 when the claim was held (or the op was applied already),
--         0 when it was not, 2 for a "start" whose job has a cancel request (nothing written)
local ttl = tonumber(ARGV[1])
local ops = cjson.decode(ARGV[2])
local infer = ARGV[3] == '1'
local recent = tonumber(ARGV[4] or '0') or 0
recent = recent > 0 and KEYS[recent] or nil
local indexed = false
local clock = nil
local function now()
  if not clock then
    local t = redis.call('TIME')
    clock = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return clock
end
local function owner_alive(token)
  local owner = string.match(token, '^(.*)|[^|]*$')
  local lease = owner and redis.call('ZSCORE', KEYS[6], owner)
  return lease and tonumber(lease) >= now()
end
-- include: group_end
local final = {done = true, dead = true, bury = true}
local later = {retry = true, defer = true}
local out = {}
for n, op in ipairs(ops) do
  local kind, token = op[1], op[2]
  local key = op[3] ~= 0 and KEYS[op[3]] or nil
  local job_id, arg, delay, status = op[4], op[5], op[6], op[7]
  local unique, cancel, extra = op[8], op[9], op[10]
  local held
  local write = true
  if kind == 'progress' then
    held = redis.call('HEXISTS', KEYS[1], token)
    write = false
    if held == 1 and key then
      local fields = {}
      for name, value in pairs(status) do
        fields[#fields + 1] = name
        fields[#fields + 1] = value
      end
      redis.call('HSET', key, unpack(fields))
    end
  elseif kind == 'start' then
    held = redis.call('HEXISTS', KEYS[1], token)
    if held == 1 and cancel ~= 0 and redis.call('EXISTS', KEYS[cancel]) == 1 then
      held = 2
    elseif held == 1 then
      if arg ~= '' then
        redis.call('HSET', KEYS[1], token, arg)
      end
      if unique ~= 0 and redis.call('GET', KEYS[unique]) == job_id then
        redis.call('EXPIRE', KEYS[unique], ttl + extra)
      end
    end
  else
    local raw = nil
    if kind == 'bury' then
      raw = redis.call('HGET', KEYS[1], token)
    end
    held = redis.call('HDEL', KEYS[1], token)
    if held == 1 then
      if later[kind] then
        redis.call('ZADD', KEYS[3], now() + delay, arg)
        if unique ~= 0 and redis.call('GET', KEYS[unique]) == job_id then
          redis.call('EXPIRE', KEYS[unique], ttl + extra)
        end
      elseif kind == 'dead' then
        redis.call('LPUSH', KEYS[4], arg)
      elseif kind == 'bury' then
        redis.call('HSET', KEYS[7], token, raw)
        redis.call('LPUSH', KEYS[4], arg)
      elseif kind == 'requeue' then
        redis.call('RPUSH', KEYS[2], arg)
      end
      if kind ~= 'requeue' and kind ~= 'defer' and job_id ~= '' then
        redis.call('HDEL', KEYS[5], job_id)
      end
      if final[kind] then
        if unique ~= 0 and redis.call('GET', KEYS[unique]) == job_id then
          redis.call('DEL', KEYS[unique])
        end
        if cancel ~= 0 then
          redis.call('DEL', KEYS[cancel])
        end
        if op[11] then
          group_end(op[11])
        end
      end
    elseif infer and owner_alive(token) then
      -- Applied by an earlier send: its effects are in place, and the record may have moved
      -- on since (the retry ran elsewhere), so nothing is written again.
      held = 1
      write = false
    end
  end
  if held == 1 and write and key and next(status) ~= nil then
    local fields = {}
    for name, value in pairs(status) do
      fields[#fields + 1] = name
      fields[#fields + 1] = value
    end
    if later[kind] then
      fields[#fields + 1] = 'due_at'
      fields[#fields + 1] = string.format('%.3f', (now() + delay) / 1000)
    end
    redis.call('HSET', key, unpack(fields))
    if not later[kind] then
      redis.call('HDEL', key, 'due_at', 'next_attempt_in', 'step')
    end
    redis.call('EXPIRE', key, ttl + extra)
    if recent and kind ~= 'progress' then
      redis.call('ZADD', recent, now(), job_id)
      indexed = true
    end
  end
  out[n] = held
end
if indexed then
  redis.call('ZREMRANGEBYRANK', recent, 0, -tonumber(ARGV[5]) - 1)
end
return out
