-- Move one dead-letter entry back onto the queue, atomically: the entry is removed only if it is
-- still there, and the job is pushed only if the entry was removed (two operators requeueing the
-- same entry requeue it once). The job's status record, if it has one, says "queued" again. A
-- text that was too large to keep in the entry comes back from the blobs hash.
-- KEYS[1] dead-letter list
-- KEYS[2] queue list
-- KEYS[3] the job's status record hash (only written when ARGV[3] is "1")
-- KEYS[4] dead-letter blobs hash
-- ARGV[1] the dead-letter entry, exactly as stored
-- ARGV[2] the job text to enqueue ("" with ARGV[5]: the blob)
-- ARGV[3] "1" when the job has an id and KEYS[3] is its status record
-- ARGV[4] Unix time
-- ARGV[5] the blob's field in KEYS[4] ("" when the entry holds the whole text)
-- Output: 1 when requeued, 0 when the entry was gone
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then
  return 0
end
local text = ARGV[2]
if ARGV[5] ~= '' then
  text = redis.call('HGET', KEYS[4], ARGV[5]) or ''
  redis.call('HDEL', KEYS[4], ARGV[5])
end
redis.call('LPUSH', KEYS[2], text)
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HSET', KEYS[3], 'state', 'queued', 'attempt', '1', 'requeued_at', ARGV[4])
end
return 1
