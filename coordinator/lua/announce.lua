-- The session's agent is about to start a subagent (Claude Code's Agent tool): touch (or
-- create) the session and queue the subagent's task, for the next subagent that starts.
-- KEYS, ARGV[1..14]: the head of lib.lua, with the session's keys
-- own ARGV: conversation id, the task, n, then n field/value pairs to set on the session
--           (begin_event in event.lua)
-- publishes 'started' (a new session) or 'task' (its task changed)
-- returns {'revoked'} | {'limited', ...} | {'full'} | {'not_owner'} | {'ok', created 0|1}
local MAX_QUEUED = 8
local _, task = own_args(2)
local s, refused = begin_event(false, 2)
if refused then return refused end
local queued = redis.call('HGET', K.session, 'subagent_tasks')
local tasks = queued and cjson.decode(queued) or {}
-- Tasks whose subagent never started (its hook failed) must not pile up.
while #tasks >= MAX_QUEUED do table.remove(tasks, 1) end
tasks[#tasks + 1] = task
redis.call('HSET', K.session, 'subagent_tasks', cjson.encode(tasks))
settle(s)
return {'ok', s.created}
