#!lua flags=allow-oom
-- Take back orphaned claims (found by `orphans`), each only if it is still claimed and its owner
-- still holds no live lease: back at the queue's consuming end, so it runs next; or, past the
-- crash budget (or when the worker judged it unrunnable), to the dead-letter list, ending the
-- job's status record and releasing its unique lock like any other final outcome.
-- Flags: allow-oom (reaping moves data, it never adds any).
-- KEYS[1] processing hash (token -> job text)
-- KEYS[2] queue list
-- KEYS[3] dead-letter list
-- KEYS[4] redeliveries hash (job id -> count)
-- KEYS[5] workers sorted set
-- KEYS[6] dead-letter blobs hash
-- KEYS[7..] status records, unique-key locks and cancel requests, referenced by index (0: none)
-- ARGV[1] status record TTL, seconds
-- ARGV[2] crash-redelivery budget (a job is re-delivered at most this many times)
-- ARGV[3] JSON array of orphans, each [token, job id, status key index, unique lock index,
--         cancel request index, text to requeue, dead-letter entry, mode, {dead status},
--         {requeued status}]; mode 0: count against the budget; 1: dead-letter now; 2: dead-letter
--         now, the claimed text moving to the blobs hash; a group member's order has an 11th
--         item, its group end (see group_end below), applied with its dead letter
-- Output: per orphan 0 (left alone: gone, or its owner is alive), 1 (requeued), 2 (dead-lettered)
local ttl = tonumber(ARGV[1])
local budget = tonumber(ARGV[2])
local orphans = cjson.decode(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function write(index, status)
  if index == 0 or next(status) == nil or redis.call('EXISTS', KEYS[index]) == 0 then
    return
  end
  local fields = {}
  for name, value in pairs(status) do
    fields[#fields + 1] = name
    fields[#fields + 1] = value
  end
  redis.call('HSET', KEYS[index], unpack(fields))
  redis.call('HDEL', KEYS[index], 'due_at', 'next_attempt_in')
  redis.call('EXPIRE', KEYS[index], ttl)
end
-- include: group_end
local out = {}
for n, o in ipairs(orphans) do
  local token, id, skey, ukey, ckey = o[1], o[2], o[3], o[4], o[5]
  local text, entry, mode, dead, requeued = o[6], o[7], o[8], o[9], o[10]
  local owner = string.match(token, '^(.*)|[^|]*$')
  local lease = owner and redis.call('ZSCORE', KEYS[5], owner)
  local raw = redis.call('HGET', KEYS[1], token)
  if not raw or (lease and tonumber(lease) >= now) then
    out[n] = 0
  else
    local count = 0
    if mode == 0 and id ~= '' then
      count = redis.call('HINCRBY', KEYS[4], id, 1)
    end
    redis.call('HDEL', KEYS[1], token)
    if mode ~= 0 or count > budget then
      if mode == 2 then
        redis.call('HSET', KEYS[6], token, raw)
      end
      redis.call('LPUSH', KEYS[3], entry)
      if id ~= '' then
        redis.call('HDEL', KEYS[4], id)
      end
      write(skey, dead)
      if ukey ~= 0 and redis.call('GET', KEYS[ukey]) == id then
        redis.call('DEL', KEYS[ukey])
      end
      if ckey ~= 0 then
        redis.call('DEL', KEYS[ckey])
      end
      if o[11] then
        group_end(o[11])
      end
      out[n] = 2
    else
      redis.call('RPUSH', KEYS[2], text)
      write(skey, requeued)
      out[n] = 1
    end
  end
end
return out
