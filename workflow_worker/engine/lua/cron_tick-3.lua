-- Settle one tick of one schedule, atomically: if the tick is newer than the schedule's last
-- settled tick, store it and (unless the job text is empty) push the job and write its queued
-- status record. Every replica runs every schedule; whichever replica calls first for a tick
-- enqueues it, and the others find the stored tick equal or newer and change nothing.
-- KEYS[1] the schedule's marker (string: unix seconds of the last settled tick)
-- KEYS[2] queue list
-- KEYS[3] status record hash of the tick's job
-- ARGV[1] tick, unix seconds
-- ARGV[2] job text; '' settles the tick without enqueueing (missed ticks under "skip")
-- ARGV[3] status record TTL, seconds
-- ARGV[4..] status record fields and values, alternating
-- Output: 1 when this call settled the tick, 0 when it was not newer (nothing changed)
local tick = tonumber(ARGV[1])
local last = tonumber(redis.call('GET', KEYS[1]) or '')
if last ~= nil and tick <= last then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then
  redis.call('LPUSH', KEYS[2], ARGV[2])
  if #ARGV > 3 then
    redis.call('HSET', KEYS[3], unpack(ARGV, 4))
    redis.call('EXPIRE', KEYS[3], tonumber(ARGV[3]))
  end
end
return 1
