-- A fragment, not a script: `lua_source` puts it in place of the line `-- include: group_end`
-- in apply-7.lua and reap-6.lua, the two scripts that end jobs for good, so both record a
-- group member's end the same way. It uses KEYS[2] (the queue list) and ARGV[1] (the status
-- record TTL), which both scripts pass in those places.
-- group-end: begin (from _group_end.lua, where `-- include: group_end` stands)
-- A group member ended for good: m = {group hash index, group record index, member index,
-- entry, state, {later chain links' record indices}, job id}. The member is recorded once
-- (an outcome applied again changes nothing); the call that records the last one
-- pushes the callback (or, with none, ends the group's record), so it runs exactly once.
local function group_end(m)
  local g, r = KEYS[m[1]], KEYS[m[2]]
  local total = tonumber(redis.call('HGET', g, 'total'))
  local field = 'r:' .. m[3]
  if not total or redis.call('HEXISTS', g, field) == 1 then
    return
  end
  redis.call('HSET', g, field, m[4])
  local done = redis.call('HINCRBY', g, 'done', 1)
  local failed = redis.call('HINCRBY', g, 'failed', m[5] == 'success' and 0 or 1)
  redis.call('HSET', r, 'group_done', done, 'group_failed', failed)
  redis.call('EXPIRE', g, ARGV[1])
  redis.call('EXPIRE', r, ARGV[1])
  if done < total then
    return
  end
  local waiting = redis.call('HGET', r, 'state') == 'waiting'
  local t = redis.call('TIME')
  local stamp = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
  local mode = redis.call('HGET', g, 'mode')
  if mode == 'chain' and (failed > 0 or not waiting) then
    -- The chain stops here (a failed link, or a next link cancelled while it waited): the
    -- links after it never run either.
    local why = 'not run: chain stopped at job ' .. m[7] .. ' (' .. m[5] .. ')'
    if failed == 0 then
      why = 'not run: an earlier link of the chain was cancelled'
    end
    local links = {m[2]}
    for _, index in ipairs(m[6]) do
      links[#links + 1] = index
    end
    for _, index in ipairs(links) do
      if redis.call('HGET', KEYS[index], 'state') == 'waiting' then
        redis.call('HSET', KEYS[index], 'state', 'cancelled', 'error', why, 'finished_at', stamp)
        redis.call('EXPIRE', KEYS[index], ARGV[1])
      end
    end
    return
  end
  if not waiting then
    return
  end
  local parts = {}
  for i = 0, total - 1 do
    parts[#parts + 1] = redis.call('HGET', g, 'r:' .. i) or 'null'
  end
  local joined = '[' .. table.concat(parts, ',') .. ']'
  if mode == 'chain' then
    joined = parts[1]
  end
  local head = redis.call('HGET', g, 'head')
  if head then
    redis.call('LPUSH', KEYS[2], head .. joined .. redis.call('HGET', g, 'tail'))
    redis.call('HSET', r, 'state', 'queued', 'enqueued_at', stamp)
  else
    redis.call('HSET', r, 'state', 'success', 'result', joined, 'finished_at', stamp)
  end
end
-- group-end: end
