-- The open requests of a workspace: each requested file, who holds it (or whom it is held
-- for, next in line), and who waits for it, first come first.
-- KEYS, ARGV[1..14]: the head of lib.lua; no own ARGV
-- returns {'revoked'} | {'limited', ...}
--       | {'ok', now, {{path, holder_of row or {}, {{sid, user, agent, note, at_ms}...}}...}}
local refused = admit('read')
if refused then return refused end
local now = now_ms()
local rows = {}
local queued = redis.call('HGETALL', K.requests)
for i = 1, #queued, 2 do
  local file, entry = queued[i], cjson.decode(queued[i + 1])
  local waiters = {}
  for _, w in ipairs(type(entry.waiters) == 'table' and entry.waiters or {}) do
    if redis.call('EXISTS', P.session .. w.sid) == 1 then
      waiters[#waiters + 1] = {w.sid, w.user, w.agent, w.note or '', w.at_ms}
    end
  end
  local owner = redis.call('GET', P.lock .. file)
  local held = {}
  if owner then
    held = holder_of(entry.path, P.lock .. file, owner)
  else
    local c = covering(file, nil)
    if c then held = holder_of(entry.path, P.lock .. c.folded, c.owner, c.spelled) end
  end
  if #waiters > 0 or #held > 0 then rows[#rows + 1] = {entry.path, held, waiters} end
end
return {'ok', now, rows}
