#!lua flags=allow-oom
-- Register or renew a worker's lease, on the Redis clock.
-- KEYS[1] workers sorted set (worker id -> lease expiry, ms)
-- KEYS[2] workers info hash (worker id -> JSON)
-- KEYS[3] the fleet's pulse (server time, ms, of the last lease renewal by anyone)
-- ARGV[1] worker id
-- ARGV[2] lease length, ms
-- ARGV[3] info JSON
-- ARGV[4] "1" to register (start-up), "0" to renew
-- Output: 1 when the lease is held; 0 when a renewal found it gone (the worker was presumed dead
--         and its jobs were re-delivered: it must drop them and register again)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[4] ~= '1' and not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('SET', KEYS[3], now)
return 1
