-- One page of the live reservations of a workspace, each with its holder.
-- KEYS, ARGV[1..14]: the head of lib.lua
-- own ARGV: most reservations in the page, the cursor: score and path of the last one
--           of the page before ('' '': none)
-- returns {'revoked'} | {'limited', ...}
--       | {'ok', now, {{path, sid, pttl, user_name, current_task, conversation_id,
--                       agent_type, parent, subagent_type}...}, live total,
--              {score, path} | nil}
--         longest-lived first; the last element is the cursor of the next page
local limit, after_score, after_member = own_args(3)
local refused = admit('read')
if refused then return refused end
local now = now_ms()
local rows, cursor = live_reservations(now, tonumber(limit), after_score ~= '' and after_score,
                                       after_member)
return {'ok', now, rows, live_count(K.locks, now), cursor}
