-- One page of the live reservations of a workspace, each with its holder.
-- KEYS[1..2], ARGV[1..3]: see admit() in lib.lua
-- KEYS[3] = locks index (zset)   ARGV[4..5] = key prefixes of locks and holder cards
-- ARGV[6] = most reservations in the page
-- ARGV[7..8] = the cursor: score and path of the last one of the page before ('' '': none)
-- returns {'revoked'} | {'limited', ...}
--       | {'ok', now, {{path, sid, pttl, user_name, current_task, conversation_id,
--                       agent_type}...}, live total, {score, path} | nil}
--         longest-lived first; the last element is the cursor of the next page
local refused = admit('read')
if refused then return refused end
local now = now_ms()
local after_score = ARGV[7] ~= '' and ARGV[7]
local rows, cursor = live_reservations(KEYS[3], ARGV[4], ARGV[5], now, tonumber(ARGV[6]),
                                       after_score, ARGV[8])
return {'ok', now, rows, redis.call('ZCOUNT', KEYS[3], '(' .. now, '+inf'), cursor}
