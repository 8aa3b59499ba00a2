-- Take back the jobs of workers whose lease expired (or that hold no lease at all) and put them
-- at the queue's consuming end, so they run next. A job re-delivered more than the crash budget
-- allows goes to the dead-letter list instead, so a job that kills its worker cannot crash-loop
-- the fleet.
-- KEYS[1] workers sorted set (worker id -> lease expiry, ms)
-- KEYS[2] workers info hash
-- KEYS[3] processing hash (token -> job text)
-- KEYS[4] queue list
-- KEYS[5] redeliveries hash (job id -> count)
-- KEYS[6] dead-letter list
-- ARGV[1] crash-redelivery budget (a job is re-delivered at most this many times)
-- ARGV[2] "1" to scan for orphans even when no lease expired (start-up and every few rounds)
-- ARGV[3] Unix time, for dead-letter entries
-- Output: {jobs re-delivered, jobs dead-lettered, workers removed}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
if #expired == 0 and ARGV[2] ~= '1' then
  return {0, 0, 0}
end
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
local alive = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  alive[id] = true
end
local budget = tonumber(ARGV[1])
local requeued, buried = 0, 0
for _, token in ipairs(redis.call('HKEYS', KEYS[3])) do
  local owner = string.match(token, '^(.*)|[^|]*$')
  if not owner or not alive[owner] then
    local raw = redis.call('HGET', KEYS[3], token)
    redis.call('HDEL', KEYS[3], token)
    local ok, job = pcall(cjson.decode, raw)
    local id = nil
    if ok and type(job) == 'table' and type(job['id']) == 'string' then
      id = job['id']
    else
      id = 'sha1:' .. redis.sha1hex(raw)
    end
    local count = redis.call('HINCRBY', KEYS[5], id, 1)
    if count > budget then
      redis.call('HDEL', KEYS[5], id)
      redis.call('LPUSH', KEYS[6], cjson.encode({
        reason = 'crash redelivery budget exhausted: the job was re-delivered ' .. budget ..
                 ' times after its worker died',
        failed_at = ARGV[3], job = raw, kind = 'crash_budget'}))
      buried = buried + 1
    else
      redis.call('RPUSH', KEYS[4], raw)
      requeued = requeued + 1
    end
  end
end
return {requeued, buried, #expired}
