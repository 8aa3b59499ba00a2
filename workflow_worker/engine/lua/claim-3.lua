-- Claim up to N waiting jobs for one worker, atomically: each moves from the queue's consuming
-- end into the processing hash under a fresh claim token "<worker id>|<sequence>".
-- KEYS[1] queue list
-- KEYS[2] processing hash (token -> job text)
-- KEYS[3] workers sorted set (worker id -> lease expiry, ms)
-- ARGV[1] worker id
-- ARGV[2] how many jobs at most (the worker's free slots)
-- ARGV[3] first token sequence number
-- Output: false when the worker holds no live lease (it was presumed dead and must not claim);
--         otherwise a flat array {token1, job1, token2, job2, ...} (empty when the queue is empty)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = redis.call('ZSCORE', KEYS[3], ARGV[1])
if not lease or tonumber(lease) < now then
  return false
end
local items = redis.call('RPOP', KEYS[1], tonumber(ARGV[2]))
if not items then
  return {}
end
local out = {}
local seq = tonumber(ARGV[3])
for i, raw in ipairs(items) do
  local token = ARGV[1] .. '|' .. (seq + i - 1)
  redis.call('HSET', KEYS[2], token, raw)
  out[#out + 1] = token
  out[#out + 1] = raw
end
return out
