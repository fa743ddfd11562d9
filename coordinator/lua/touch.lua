-- Any other hook event: touch (or create) the session, and claim the files it is about
-- to write, all or nothing (with none: just the touch). Check and claim are one step.
-- KEYS, ARGV[1..14]: the head of lib.lua, with the session's keys
-- KEYS[FIRST_KEY..] = locks of the files to claim
-- own ARGV: conversation id, most files a session may hold, most files a key's sessions
--           may hold, '1' to take the session's notes (its event can carry context), ms
--           to keep the event's record (0: it has no id), n, then n field/value pairs to
--           set on the session (begin_event in event.lua), then one claim per lock key (a
--           path, or path NUL symbol: lib.lua's SYMBOL), then one kind per lock key (''
--           for a whole file)
-- publishes 'started' (a new session), 'task' (its task changed), 'reserved' (each file
-- newly claimed), 'denied' (a file refused), 'handed_off' (a free file queued for)
-- returns {'revoked'} | {'limited', ...} | {'full'} | {'not_owner'} (the session is
--         another key's) | {'ok', created 0|1, {note json...}}
--       | {'deny', created, claim, holder sid, pttl, holder user_name, agent_type,
--          current_task, parent, subagent_type, via, next in line, symbol kind}  (the
--          claim held: the one asked for, or within its file the whole file or a symbol)
--       | {'over_cap', created, 'session' | 'key', the cap, files held}  (a claim past a cap)
--       | {'again', the reply the same event got} (a duplicate; nothing changed)
local _, max_session_files, max_key_files, notes = own_args(4)
local s, refused = begin_event(false, 5, false, true)
if refused then return refused end
local denied = claim(s, tonumber(max_session_files), tonumber(max_key_files))
if denied then return noted(s, denied) end
settle(s)
return noted(s, {'ok', s.created, notes == '1' and take_notes() or {}})
