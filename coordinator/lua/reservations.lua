-- The live reservations of a workspace, each with its holder.
-- KEYS[1] = workspace api keys (hash)   KEYS[2] = locks index (zset)
-- ARGV[1] = api key digest   ARGV[2..3] = key prefixes of locks and holder cards
-- returns {'revoked'} | {'ok', now, {{path, sid, pttl, user_name, current_task, conversation_id}...}}
--         longest-lived first
if key_revoked(KEYS[1], ARGV[1]) then return {'revoked'} end
local lock_prefix, holder_prefix = ARGV[2], ARGV[3]
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local reservations = {}
for _, path in ipairs(redis.call('ZRANGE', KEYS[2], '+inf', '(' .. now, 'BYSCORE', 'REV')) do
  local lock = lock_prefix .. path
  local sid = redis.call('GET', lock)
  if sid then
    local card = redis.call('HMGET', holder_prefix .. sid, 'user_name', 'current_task', 'conversation_id')
    reservations[#reservations + 1] = {path, sid, redis.call('PTTL', lock), card[1], card[2], card[3]}
  end
end
return {'ok', now, reservations}
