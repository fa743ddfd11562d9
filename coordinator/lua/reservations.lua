-- The live reservations of a workspace, each with its holder.
-- KEYS[1..2], ARGV[1..3]: see admit() in lib.lua
-- KEYS[3] = locks index (zset)   ARGV[4..5] = key prefixes of locks and holder cards
-- returns {'revoked'} | {'limited', ...}
--       | {'ok', now, {{path, sid, pttl, user_name, current_task, conversation_id}...}}
--         longest-lived first
local refused = admit()
if refused then return refused end
local lock_prefix, holder_prefix = ARGV[4], ARGV[5]
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local reservations = {}
for _, path in ipairs(redis.call('ZRANGE', KEYS[3], '+inf', '(' .. now, 'BYSCORE', 'REV')) do
  local lock = lock_prefix .. path
  local sid = redis.call('GET', lock)
  if sid then
    local card = redis.call('HMGET', holder_prefix .. sid, 'user_name', 'current_task', 'conversation_id')
    reservations[#reservations + 1] = {path, sid, redis.call('PTTL', lock), card[1], card[2], card[3]}
  end
end
return {'ok', now, reservations}
