#!lua
-- Record one durable step's result, conditional on the worker still holding the job's claim
-- token (as apply-7.lua checks the processing hash), so a worker whose claim was taken back
-- cannot record a step of a job that now runs elsewhere. A step recorded already keeps its
-- first result (a send repeated after a lost reply changes nothing).
-- KEYS[1] processing hash (claim token -> job text)
-- KEYS[2] steps hash of the job (step key -> JSON result, plus `_run`: the enqueue it belongs to)
-- KEYS[3] status record of the job
-- ARGV[1] claim token
-- ARGV[2] step key (name#occurrence)
-- ARGV[3] result, JSON text
-- ARGV[4] the least time the steps hash must live from now, seconds (at least as long as the
--         status record: the result TTL plus the job's timeout, plus a sleep's length)
-- ARGV[5] "1": write progress into the status record (`steps_done`, `last_step`, and drop `step`,
--         the step shown as running, when it is this one) when it exists;
--         "0": not (a job without a producer-given id has no record while it runs)
-- ARGV[6] job text to put in the processing entry ("" for none): a job that was given its id at
--         claim keeps that id if it is re-delivered after a crash, and with it its steps
-- Output: 1 when recorded (or recorded already), 0 when the claim is not held (nothing written)
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return 0
end
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[6])
end
local run = redis.call('HGET', KEYS[3], 'enqueue_call') or ''
local mark = redis.call('HGET', KEYS[2], '_run')
if mark and mark ~= run then
  -- Left by an earlier enqueue of the same job id: not this run's steps.
  redis.call('DEL', KEYS[2])
  mark = nil
end
if not mark then
  redis.call('HSET', KEYS[2], '_run', run)
end
-- HEXISTS and HSET rather than HSETNX: the documented ACL grants the worker these commands.
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
end
local life = tonumber(ARGV[4]) * 1000
if redis.call('PTTL', KEYS[2]) < life then
  redis.call('PEXPIRE', KEYS[2], life)
end
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HSET', KEYS[3], 'steps_done', redis.call('HLEN', KEYS[2]) - 1, 'last_step', ARGV[2])
  if redis.call('HGET', KEYS[3], 'step') == ARGV[2] then
    redis.call('HDEL', KEYS[3], 'step')
  end
end
return 1
