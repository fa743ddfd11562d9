-- The person prompted: touch (or create) the session and tell it what changed since it
-- last heard.
-- KEYS, ARGV[1..14]: the head of lib.lua, with the session's keys
-- own ARGV: conversation id, most files to tell of, decisions to look through,
--           '1' to take the session's notes, n, then n field/value pairs to set on the session (begin_event in lib.lua)
-- publishes 'started' (a new session) or 'task' (its task changed)
-- returns {'revoked'} | {'limited', ...} | {'full'} | {'not_owner'} (the session is
--         another key's) | {'news', ...} (see news() in lib.lua)
local s, refused = begin_event(false, 4)
if refused then return refused end
settle(s)
local _, lines, recent, notes = own_args(4)
local told = news(s, tonumber(lines), tonumber(recent))
told[#told + 1] = notes == '1' and take_notes() or {}
return told
