-- A subagent starts: touch (or create) its own session, a child of its parent's (the
-- field 'parent' names it), whose task is the one its parent's agent queued last
-- (announce.lua), unless the event names one.
-- KEYS, ARGV[1..14]: the head of lib.lua, with the subagent's session keys
-- own ARGV: conversation id, n, then n field/value pairs to set on the session (they
--           name the parent; begin_event in event.lua)
-- publishes 'started' (a new session) or 'task' (its task changed)
-- returns {'revoked'} | {'limited', ...} | {'full'} | {'not_owner'} | {'ok', created 0|1}
local s, refused = begin_event(false, 1)
if refused then return refused end
if s.parent and not s.task_sent then
  local parent = P.session .. s.parent
  local queued = redis.call('HGET', parent, 'subagent_tasks')
  local tasks = queued and cjson.decode(queued) or {}
  if #tasks > 0 then
    s.task = table.remove(tasks, 1)
    redis.call('HSET', K.session, 'current_task', s.task)
    s.card_stale = true
    if #tasks > 0 then
      redis.call('HSET', parent, 'subagent_tasks', cjson.encode(tasks))
    else
      redis.call('HDEL', parent, 'subagent_tasks')
    end
  end
end
settle(s)
return {'ok', s.created}
