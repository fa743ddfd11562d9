-- The live reservations of a workspace, each with its holder.
-- KEYS[1..2], ARGV[1..3]: see admit() in lib.lua
-- KEYS[3] = locks index (zset)   ARGV[4..5] = key prefixes of locks and holder cards
-- returns {'revoked'} | {'limited', ...}
--       | {'ok', now, {{path, sid, pttl, user_name, current_task, conversation_id,
--                       agent_type}...}}   longest-lived first
local refused = admit('read')
if refused then return refused end
local now = now_ms()
return {'ok', now, live_reservations(KEYS[3], ARGV[4], ARGV[5], now, -1)}
