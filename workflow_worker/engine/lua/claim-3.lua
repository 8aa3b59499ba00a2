#!lua flags=allow-oom
-- Claim up to N waiting jobs for one worker, atomically: each moves from the queue's consuming
-- end into the processing hash under the claim token "<worker id>|<call id>:<n>" (n = 1, 2, ...).
-- The worker never uses a call id for two different calls, so tokens never repeat. A call sent
-- again after its reply was lost (same call id, same count) answers the jobs the first execution
-- claimed and claims nothing more: nobody but the worker itself removes a live worker's claims,
-- and it cannot have touched claims it never heard of.
-- A text longer than the size limit is claimed like any other, but only its head is answered:
-- the worker dead-letters it without ever holding it in memory.
-- Flags: allow-oom, so workers keep draining a Redis that is full (claims move, never add, data).
-- KEYS[1] queue list
-- KEYS[2] processing hash (token -> job text)
-- KEYS[3] workers sorted set (worker id -> lease expiry, ms)
-- ARGV[1] worker id
-- ARGV[2] how many jobs at most (the worker's free slots)
-- ARGV[3] call id
-- ARGV[4] size limit, bytes
-- ARGV[5] bytes of head answered for a text over the limit
-- Output: false when the worker holds no live lease (it was presumed dead and must not claim);
--         otherwise a flat array {token1, text1, size1, token2, ...} (empty when the queue is)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = redis.call('ZSCORE', KEYS[3], ARGV[1])
if not lease or tonumber(lease) < now then
  return false
end
local prefix = ARGV[1] .. '|' .. ARGV[3] .. ':'
local count = tonumber(ARGV[2])
local limit, head = tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {}
local function answer(token, raw)
  local size = #raw
  if size > limit then
    raw = string.sub(raw, 1, head)
  end
  out[#out + 1] = token
  out[#out + 1] = raw
  out[#out + 1] = size
end
local first = redis.call('HGET', KEYS[2], prefix .. '1')
if first then
  answer(prefix .. '1', first)
  for i = 2, count do
    local raw = redis.call('HGET', KEYS[2], prefix .. i)
    if not raw then
      break
    end
    answer(prefix .. i, raw)
  end
  return out
end
local items = redis.call('RPOP', KEYS[1], count)
if not items then
  return out
end
for i, raw in ipairs(items) do
  redis.call('HSET', KEYS[2], prefix .. i, raw)
  answer(prefix .. i, raw)
end
return out
