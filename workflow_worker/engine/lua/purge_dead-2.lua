-- Delete every dead-letter entry and the texts kept beside them, atomically.
-- KEYS[1] dead-letter list
-- KEYS[2] dead-letter blobs hash
-- Output: how many entries there were
local count = redis.call('LLEN', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
return count
