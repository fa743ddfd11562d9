-- A conversation starts (or resumes): touch (or create) its session, renew every
-- reservation it holds, and brief it on the workspace.
-- KEYS, ARGV[1..12]: the head of lib.lua, with the session's keys
-- own ARGV: conversation id, lines per briefing section, decisions in the briefing,
--           n, then n field/value pairs to set on the session (begin_event in lib.lua)
-- publishes 'started' (a new session) or 'task' (its task changed)
-- returns {'revoked'} | {'limited', ...} | {'full'} | {'not_owner'} (the session is
--         another key's) | {'brief', ...} (see briefing() in lib.lua)
local _, lines, recent = own_args(3)
local s, refused = begin_event(true, 3)
if refused then return refused end
settle(s)
return briefing(s, tonumber(lines), tonumber(recent))
