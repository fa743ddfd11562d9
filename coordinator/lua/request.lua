-- request_file: ask the holder of a file for it and join its first-come queue. The holder
-- is told on its next event that can carry context (its notes); when the file frees it is
-- held for the first in line for the hand-off grace (claims.lua).
-- KEYS, ARGV[1..14]: the head of lib.lua, with the session's keys
-- KEYS[FIRST_KEY] = the lock of the file
-- own ARGV: conversation id, a note for the holder, most waiters a file may have, most
--           files requested in the workspace, n, then n field/value pairs to set on the
--           session (begin_event), then the file's path
-- publishes 'requested' {path, by, holder} (and 'handed_off' if the file was free)
-- returns {'revoked'} | {'limited', ...} | {'full'} | {'not_owner'}
--       | {'yours'} (the session holds it) | {'next', pttl} (it is held for the session)
--       | {'free'} (nobody holds it: nothing to request)
--       | {'queue_full', most} | {'too_many', most}
--       | {'queued', position, holder_of row}
local _, note, max_waiters, max_requests = own_args(4)
local s, refused = begin_event(false, 4)
if refused then return refused end
settle(s)
local path, lock = ARGV[s.first_path], KEYS[FIRST_KEY]
local folded = string.lower(path)
local owner = redis.call('GET', lock)
if owner == SID then return {'yours'} end
if owner == SID .. NEXT then return {'next', redis.call('PTTL', lock)} end
local row
if owner then
  row = holder_of(path, lock, owner)
else
  row = blocked_claim(s, path, nil)
  if not row then
    -- Free: queued for by nobody, or this session was first in line: it may take it.
    return {'free'}
  end
end
local entry = redis.call('HGET', K.requests, folded)
entry = entry and cjson.decode(entry) or {path = path, waiters = {}}
if type(entry.waiters) ~= 'table' then entry.waiters = {} end
local position
for i, waiter in ipairs(entry.waiters) do
  if waiter.sid == SID then position = i end
end
if not position then
  if #entry.waiters >= tonumber(max_waiters) then return {'queue_full', tonumber(max_waiters)} end
  if redis.call('HEXISTS', K.requests, folded) == 0
     and redis.call('HLEN', K.requests) >= tonumber(max_requests) then
    return {'too_many', tonumber(max_requests)}
  end
  if not s.who then s.who = redis.call('HMGET', K.session, 'user_name', 'agent_type') end
  entry.waiters[#entry.waiters + 1] = {sid = SID, user = s.who[1] or '', agent = s.who[2] or '',
                                       note = note, at_ms = s.now}
  position = #entry.waiters
  redis.call('HSET', K.requests, folded, cjson.encode(entry))
  extend(K.requests, REQUEST_TTL)
  -- The holder hears of it (not one it is only held for: it is told the file is free).
  if row[10] == 0 then
    push_note(row[2], {kind = 'waiting', path = path, by = s.who[1] or '', agent = s.who[2] or '',
                       note = note, via = row[9], position = position})
  end
  publish_event(s, 'requested', {path = path, by = s.who[1] or cjson.null,
                                 holder = row[4] or cjson.null})
end
return {'queued', position, row}
