-- The live sessions of a workspace, each with the files it holds.
-- KEYS[1] = workspace api keys (hash)   KEYS[2] = sessions index (zset)
-- ARGV[1] = api key digest
-- ARGV[2..4] = key prefixes of sessions, files and locks
-- ARGV[5..] = the session fields to read
-- returns {'revoked'} | {'ok', {{field values...}, {paths...}}...}  newest first
if key_revoked(KEYS[1], ARGV[1]) then return {'revoked'} end
local session_prefix, files_prefix, lock_prefix = ARGV[2], ARGV[3], ARGV[4]
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local sessions = {}
for _, sid in ipairs(redis.call('ZRANGE', KEYS[2], '+inf', '(' .. now, 'BYSCORE', 'REV')) do
  local fields = redis.call('HMGET', session_prefix .. sid, unpack(ARGV, 5))
  if fields[1] then
    local held = {}
    for _, path in ipairs(redis.call('SMEMBERS', files_prefix .. sid)) do
      if redis.call('GET', lock_prefix .. path) == sid then held[#held + 1] = path end
    end
    sessions[#sessions + 1] = {fields, held}
  end
end
return {'ok', sessions}
