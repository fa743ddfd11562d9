-- The live sessions of a workspace, each with the files it holds.
-- KEYS[1..2], ARGV[1..3]: see admit() in lib.lua
-- KEYS[3] = sessions index (zset)
-- ARGV[4..6] = key prefixes of sessions, files and locks
-- ARGV[7..] = the session fields to read
-- returns {'revoked'} | {'limited', ...} | {'ok', {{field values...}, {paths...}}...}
--         newest first
local refused = admit()
if refused then return refused end
local session_prefix, files_prefix, lock_prefix = ARGV[4], ARGV[5], ARGV[6]
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local sessions = {}
for _, sid in ipairs(redis.call('ZRANGE', KEYS[3], '+inf', '(' .. now, 'BYSCORE', 'REV')) do
  local fields = redis.call('HMGET', session_prefix .. sid, unpack(ARGV, 7))
  if fields[1] then
    local held = {}
    for _, path in ipairs(redis.call('SMEMBERS', files_prefix .. sid)) do
      if redis.call('GET', lock_prefix .. path) == sid then held[#held + 1] = path end
    end
    sessions[#sessions + 1] = {fields, held}
  end
end
return {'ok', sessions}
