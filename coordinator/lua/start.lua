-- A conversation starts (or resumes): touch (or create) its session, renew every
-- reservation it holds, and brief it on the workspace.
-- KEYS, ARGV[1..14]: the head of lib.lua, with the session's keys
-- own ARGV: conversation id, lines per briefing section, decisions in the briefing,
--           files others hold to read at most, '1' to take the session's notes (claims.lua),
--           ms to keep the event's record (0: it has no id),
--           n, then n field/value pairs to set on the session (begin_event in event.lua)
-- publishes 'started' (a new session) or 'task' (its task changed)
-- returns {'revoked'} | {'limited', ...} | {'full'} | {'not_owner'} (the session is
--         another key's) | {'brief', ...} (see briefing() below)
--         | {'again', the reply the same event got} (a duplicate; nothing changed)

-- The briefing: the newest `lines` of the other sessions, the newest `scan` of the files
-- others hold (render groups them by holder and directory, and puts first those near the
-- session's own), with how many there are in all, the directories the session holds files
-- in, and the `recent` newest decisions. Its work is bounded by lines + scan + the files
-- the session holds (at most the cap per session). Returns
-- {'brief', created, now, others,
--  {{user_name, agent_type, current_task, parent, subagent_type}...},
--  locked, {path, user_name, path, user_name...}, {decision json...}, {directory...}}
-- (the script adds the session's notes: {note json...}).
local function briefing(s, lines, recent, scan)
  local now, held = s.now, s.held
  redis.call('HSET', K.session, 'heard_ms', now)
  local agents = {}
  for _, other in ipairs(redis.call('ZRANGE', K.sessions, '+inf', '(' .. now, 'BYSCORE', 'REV',
                                    'LIMIT', 0, lines + 1)) do
    if other ~= SID and #agents < lines then
      local card = redis.call('HMGET', P.session .. other, 'user_name', 'agent_type',
                              'current_task', 'parent', 'subagent_type')
      if card[1] then agents[#agents + 1] = card end
    end
  end
  local others = live_count(K.sessions, now) - 1
  -- One MGET names every holder, and the rows come back flat: per row, a Lua table and
  -- a GET cost as much again as the rest of the briefing.
  local paths = redis.call('ZRANGE', K.locks, '+inf', '(' .. now, 'BYSCORE', 'REV',
                           'LIMIT', 0, scan + held)
  local locked, names, listed = {}, {}, 0
  if #paths > 0 then
    local locks = {}
    for i, path in ipairs(paths) do locks[i] = lock_of(path) end
    for i, owner in ipairs(redis.call('MGET', unpack(locks))) do
      if owner and owner ~= SID and listed < scan then
        -- A holder's name is read once, however many of these files it holds.
        local name = names[owner]
        if not name then
          name = redis.call('HGET', P.holder .. owner, 'user_name') or ''
          names[owner] = name
        end
        locked[#locked + 1] = paths[i]
        locked[#locked + 1] = name
        listed = listed + 1
      end
    end
  end
  local locked_total = live_count(K.locks, now) - held
  local folders, seen = {}, {}
  for _, path in ipairs(redis.call('SMEMBERS', K.files)) do
    local folder = string.match(path, '^(.*)/') or ''
    if not seen[folder] then
      seen[folder] = true
      folders[#folders + 1] = folder
    end
  end
  return {'brief', s.created, now, others, agents, locked_total, locked,
          redis.call('LRANGE', K.decisions, 0, recent - 1), folders}
end

local _, lines, recent, scan, notes = own_args(5)
local s, refused = begin_event(true, 6, false, true)
if refused then return refused end
settle(s)
local brief = briefing(s, tonumber(lines), tonumber(recent), tonumber(scan))
brief[#brief + 1] = notes == '1' and take_notes() or {}
return noted(s, brief)
