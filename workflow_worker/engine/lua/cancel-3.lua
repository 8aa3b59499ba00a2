-- Request the cancellation of a job by id. A queued or delayed job is marked cancelled at once
-- (the worker that later claims it drops it); a running job is cancelled by its worker, which
-- polls for requests every half second.
-- KEYS[1] the job's status record hash
-- KEYS[2] the job's cancel-request key
-- KEYS[3] the job's unique-key lock (any key when the job has none)
-- ARGV[1] request TTL, seconds (at least: a request lives as long as the job's status record)
-- ARGV[2] job id
-- ARGV[3] Unix time, for the record
-- ARGV[4] the queue's event channel: a running job's worker hears of the request at once
-- Output: "unknown" (no record), the final state when the job already ended ("success",
--         "failure", "dead", "cancelled"), "cancelled" (it was waiting), or "cancelling" (running)
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return 'unknown'
end
if state == 'success' or state == 'failure' or state == 'dead' or state == 'cancelled' then
  return state
end
local life = math.max(tonumber(ARGV[1]) * 1000, redis.call('PTTL', KEYS[1]))
redis.call('SET', KEYS[2], '1', 'PX', life)
if state == 'running' then
  redis.call('PUBLISH', ARGV[4], 'cancel ' .. ARGV[2])
  return 'cancelling'
end
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[3])
if redis.call('GET', KEYS[3]) == ARGV[2] then
  redis.call('DEL', KEYS[3])
end
return 'cancelled'
