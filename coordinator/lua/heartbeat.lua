-- A heartbeat keeps a live session alive (and its reservations); it creates none.
-- KEYS, ARGV[1..14]: the head of lib.lua, with the session's keys
-- own ARGV: '' (no conversation id: it creates nothing), 0 (no fields; begin_event)
-- returns {'revoked'} | {'limited', ...} | {'full'} | {'not_owner'} (the session is
--         another key's) | {'missing'} (no live session) | {'ok', 0}
local s, refused = begin_event(false, 1, true)
if refused then return refused end
settle(s)
return {'ok', 0}
