-- The person prompted: touch (or create) the session and tell it what changed since it
-- last heard.
-- KEYS, ARGV[1..12]: the head of lib.lua, with the session's keys
-- own ARGV: conversation id, most files to tell of, decisions to look through,
--           n, then n field/value pairs to set on the session (begin_event in lib.lua)
-- publishes 'started' (a new session) or 'task' (its task changed)
-- returns {'revoked'} | {'limited', ...} | {'full'} | {'not_owner'} (the session is
--         another key's) | {'news', ...} (see news() in lib.lua)
local s, refused = begin_event(false, 3)
if refused then return refused end
settle(s)
local _, lines, recent = own_args(3)
return news(s, tonumber(lines), tonumber(recent))
