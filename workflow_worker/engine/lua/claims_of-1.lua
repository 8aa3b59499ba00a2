-- List one worker's claims, texts over the size limit cut to their head (a scan of the
-- processing hash, as HKEYS would do; HSCAN would carry every text, however large).
-- KEYS[1] processing hash (token -> job text)
-- ARGV[1] the worker id
-- ARGV[2] size limit, bytes
-- ARGV[3] bytes of head answered for a text over the limit
-- Output: a flat array {token1, text1, size1, token2, ...}
local prefix = ARGV[1] .. '|'
local limit, head = tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for _, token in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(token, 1, #prefix) == prefix then
    local raw = redis.call('HGET', KEYS[1], token)
    local size = #raw
    if size > limit then
      raw = string.sub(raw, 1, head)
    end
    out[#out + 1] = token
    out[#out + 1] = raw
    out[#out + 1] = size
  end
end
return out
