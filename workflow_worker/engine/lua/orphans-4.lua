#!lua flags=allow-oom
-- Find the claims of workers whose lease expired (or that hold no lease at all): the first step
-- of reaping. Expired workers are removed; their claims stay where they are until `reap` takes
-- them, each on its own terms, so a crash between the two steps loses nothing (the next scan
-- finds the same orphans).
-- When nobody at all renewed a lease for a whole lease (the pulse is that old), the server or
-- the network stalled for the whole fleet, not one worker: every lease is extended by one lease
-- from now instead, so the fleet is not declared dead at once when it comes back.
-- KEYS[1] workers sorted set (worker id -> lease expiry, ms)
-- KEYS[2] workers info hash
-- KEYS[3] processing hash (token -> job text)
-- KEYS[4] the fleet's pulse (server time, ms, of the last lease renewal by anyone)
-- ARGV[1] "1" to scan for orphans even when no lease expired (start-up and every few rounds)
-- ARGV[2] how many orphans to answer at most
-- ARGV[3] size limit, bytes
-- ARGV[4] bytes of head answered for a text over the limit
-- ARGV[5] lease length, ms
-- Output: {workers removed, token1, text1, size1, token2, ...}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[5])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
if #expired == 0 and ARGV[1] ~= '1' then
  return {0}
end
local pulse = tonumber(redis.call('GET', KEYS[4]) or '0')
if #expired > 0 and now - pulse > lease then
  for _, id in ipairs(expired) do
    redis.call('ZADD', KEYS[1], now + lease, id)
  end
  redis.call('SET', KEYS[4], now)
  return {0}
end
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
local alive = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  alive[id] = true
end
local most = tonumber(ARGV[2])
local limit, head = tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {#expired}
for _, token in ipairs(redis.call('HKEYS', KEYS[3])) do
  local owner = string.match(token, '^(.*)|[^|]*$')
  if not owner or not alive[owner] then
    local raw = redis.call('HGET', KEYS[3], token)
    local size = #raw
    if size > limit then
      raw = string.sub(raw, 1, head)
    end
    out[#out + 1] = token
    out[#out + 1] = raw
    out[#out + 1] = size
    if #out >= 1 + 3 * most then
      break
    end
  end
end
return out
