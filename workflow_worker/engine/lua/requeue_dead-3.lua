-- Move one dead-letter entry back onto the queue, atomically: the entry is removed only if it is
-- still there, and the job is pushed only if the entry was removed (two operators requeueing the
-- same entry requeue it once). The job's status record, if it has one, says "queued" again.
-- KEYS[1] dead-letter list
-- KEYS[2] queue list
-- KEYS[3] the job's status record hash (only written when ARGV[3] is "1")
-- ARGV[1] the dead-letter entry, exactly as stored
-- ARGV[2] the job text to enqueue
-- ARGV[3] "1" when the job has an id and KEYS[3] is its status record
-- ARGV[4] Unix time
-- Output: 1 when requeued, 0 when the entry was gone
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then
  return 0
end
redis.call('LPUSH', KEYS[2], ARGV[2])
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HSET', KEYS[3], 'state', 'queued', 'attempt', '1', 'requeued_at', ARGV[4])
end
return 1
