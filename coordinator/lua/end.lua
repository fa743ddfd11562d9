-- End a session: release every reservation it holds and forget it. Idempotent: a retry
-- (say, after the client timed out waiting for the first answer) finds the note the
-- first end left and answers as it did.
-- KEYS, ARGV[1..14]: the head of lib.lua, with the session's keys; no own ARGV
-- publishes 'released' for each file released, then 'ended' if the session was live
-- returns {'revoked'} | {'limited', ...} | {'not_owner'} (the session is another key's)
--       | {'ok', session was live 0|1, files released, ended before 0|1}
local refused = admit('end') or refuse_other_key(K.session, K.holder)
if refused then return refused end
local live, released = end_session(SID, now_ms(), {})
if live == 0 and released == 0 then
  local before = redis.call('GET', K.ended)
  if before then return {'ok', 0, tonumber(before), 1} end
  return {'ok', 0, 0, 0}
end
-- pcall: Redis at maxmemory refuses the note; the end stands, and a retry answers 404.
redis.pcall('SET', K.ended, released, 'PX', SESSION_TTL)
return {'ok', live, released, 0}
