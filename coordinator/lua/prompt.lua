-- The person prompted: touch (or create) the session and tell it what changed since it
-- last heard.
-- KEYS, ARGV[1..14]: the head of lib.lua, with the session's keys
-- own ARGV: conversation id, most files to tell of, decisions to look through,
--           '1' to take the session's notes (claims.lua), ms to keep the event's record
--           (0: it has no id), n, then n field/value pairs to set on the session
--           (begin_event in event.lua)
-- publishes 'started' (a new session) or 'task' (its task changed)
-- returns {'revoked'} | {'limited', ...} | {'full'} | {'not_owner'} (the session is
--         another key's) | {'news', ...} (see news() below)
--         | {'again', the reply the same event got} (a duplicate; nothing changed)

-- What changed for the session since it last heard: files it touched that someone else
-- reserved since (at most `lines`), and decisions made since by anyone else (of the
-- newest `recent`). Returns {'news', created, {holder_of rows...}, {decision json...}}
-- (the script adds the session's notes: {note json...}).
local function news(s, lines, recent)
  local now = s.now
  local heard = tonumber(redis.call('HGET', K.session, 'heard_ms')) or now
  local taken = {}
  local seen = redis.call('HGETALL', K.told)
  for i = 1, #seen, 2 do
    local path, last_owner = seen[i], seen[i + 1]
    local lock = lock_of(path)
    local owner = redis.call('GET', lock)
    if owner and owner ~= SID and owner ~= last_owner and #taken < lines then
      taken[#taken + 1] = holder_of(path, lock, owner)
      redis.call('HSET', K.told, path, owner)
    end
  end
  local decided = {}
  for _, encoded in ipairs(redis.call('LRANGE', K.decisions, 0, recent - 1)) do
    local decision = cjson.decode(encoded)
    if decision.created_ms > heard and decision.session_id ~= SID then
      decided[#decided + 1] = encoded
    end
  end
  redis.call('HSET', K.session, 'heard_ms', now)
  return {'news', s.created, taken, decided}
end

local s, refused = begin_event(false, 5, false, true)
if refused then return refused end
settle(s)
local _, lines, recent, notes = own_args(4)
local told = news(s, tonumber(lines), tonumber(recent))
told[#told + 1] = notes == '1' and take_notes() or {}
return noted(s, told)
