#!lua flags=allow-oom
-- Admit one start of a rate-limited workflow, or say how long to wait, atomically for the whole
-- fleet. Rate limits are a sliding log: a start is admitted only if, for every window W with
-- limit N, fewer than N starts happened in (now - W, now]. The concurrency limit counts holders
-- (claim tokens) whose expiry has not passed and, when asked, whose token is still in the
-- processing hash (a reaped or finished claim no longer holds a slot). Nothing is written when
-- the answer is "wait". Re-acquiring with a token that already holds its admission is a no-op
-- that answers 0, so a caller may retry after a lost reply.
-- KEYS[1] starts sorted set (claim token -> start time, ms)
-- KEYS[2] holders sorted set (claim token -> holder expiry, ms)
-- KEYS[3] processing hash of the queue (claim token -> job text)
-- ARGV[1] claim token
-- ARGV[2] concurrency limit (0: none)
-- ARGV[3] holder lifetime, ms (the job's timeout plus a margin)
-- ARGV[4] 1: a holder whose token left the processing hash is stale; 0: only expiry counts
-- ARGV[5] longest wait (ms) answered while the concurrency limit is full
-- ARGV[6], ARGV[7], ...: pairs of window length (ms) and starts allowed in it
-- Output: 0 when admitted (the token then holds a slot if there is a concurrency limit),
--         else the number of milliseconds to wait before asking again (>= 1)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local token = ARGV[1]
local conc = tonumber(ARGV[2])
local hold = tonumber(ARGV[3])

local longest = 0
for i = 6, #ARGV, 2 do
  longest = math.max(longest, tonumber(ARGV[i]))
end

if conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZSCORE', KEYS[2], token) then
    redis.call('ZADD', KEYS[2], now + hold, token)
    return 0
  end
  if ARGV[4] == '1' and redis.call('ZCARD', KEYS[2]) >= conc then
    for _, holder in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
      if redis.call('HEXISTS', KEYS[3], holder) == 0 then
        redis.call('ZREM', KEYS[2], holder)
      end
    end
  end
end

local started = false
local wait = 0
if longest > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - longest)
  started = redis.call('ZSCORE', KEYS[1], token)
  if not started then
    for i = 6, #ARGV, 2 do
      local window = tonumber(ARGV[i])
      local limit = tonumber(ARGV[i + 1])
      local since = '(' .. (now - window)
      local count = redis.call('ZCOUNT', KEYS[1], since, '+inf')
      if count >= limit then
        -- The start that must leave the window before one more fits in it.
        local entry = redis.call('ZRANGEBYSCORE', KEYS[1], since, '+inf', 'WITHSCORES', 'LIMIT',
          count - limit, 1)
        wait = math.max(wait, tonumber(entry[2]) + window - now)
      end
    end
  end
end

if conc > 0 and redis.call('ZCARD', KEYS[2]) >= conc then
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  wait = math.max(wait, math.min(tonumber(first[2]) - now, tonumber(ARGV[5])))
end
if wait > 0 then
  return wait
end

if longest > 0 and not started then
  redis.call('ZADD', KEYS[1], now, token)
  redis.call('PEXPIRE', KEYS[1], longest)
end
if conc > 0 then
  redis.call('ZADD', KEYS[2], now + hold, token)
  if redis.call('PTTL', KEYS[2]) < hold then
    redis.call('PEXPIRE', KEYS[2], hold)
  end
end
return 0
