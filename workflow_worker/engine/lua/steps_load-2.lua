#!lua flags=no-writes
-- Read the recorded durable steps of one job, once per attempt (docs/steps.md).
-- Steps belong to one enqueue of a job id: the steps hash carries the `enqueue_call` of the
-- status record it was written under, so a job id enqueued again does not replay the steps of
-- its earlier run. The server's clock comes with them: a sleep's wake-up time is kept on it, so
-- workers whose clocks disagree agree on when a sleep ends.
-- KEYS[1] steps hash of the job (step key -> JSON result, plus `_run`: the enqueue it belongs to)
-- KEYS[2] status record of the job
-- Output: flat array [step key, result, ...] (with `_run`, which the caller skips), then `_now`
--         and the server's time ("seconds.microseconds"); no steps when nothing is recorded or
--         what is recorded belongs to an earlier enqueue
local t = redis.call('TIME')
local now = {'_now', string.format('%d.%06d', tonumber(t[1]), tonumber(t[2]))}
local mark = redis.call('HGET', KEYS[1], '_run')
if not mark then
  return now
end
if mark ~= (redis.call('HGET', KEYS[2], 'enqueue_call') or '') then
  return now
end
local found = redis.call('HGETALL', KEYS[1])
found[#found + 1] = now[1]
found[#found + 1] = now[2]
return found
