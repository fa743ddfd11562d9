-- End a session: release every reservation it holds and forget it. Idempotent: a retry
-- (say, after the client timed out waiting for the first answer) finds the note the
-- first end left and answers as it did.
-- KEYS[1..2], ARGV[1..3]: see admit() in lib.lua
-- KEYS[3] = session (hash)              KEYS[4] = files of the session (set)
-- KEYS[5] = holder card (hash)          KEYS[6] = sessions index (zset)
-- KEYS[7] = locks index (zset)          KEYS[8] = files the session was told about (hash)
-- KEYS[9] = the workspace's events channel
-- KEYS[10] = files the sessions of the request's key hold (zset)
-- KEYS[11] = the note that the session ended (string: files released)
-- ARGV[4] = session id   ARGV[5] = lock key prefix   ARGV[6] = how long the note lasts, ms
-- publishes 'released' for each file released, then 'ended' if the session was live
-- returns {'revoked'} | {'limited', ...} | {'not_owner'} (the session is another key's)
--       | {'ok', session was live 0|1, files released, ended before 0|1}
local refused = admit('end') or refuse_other_key(KEYS[3], KEYS[5])
if refused then return refused end
local sid, now = ARGV[4], now_ms()
local live, released = end_session(KEYS[3], KEYS[5], KEYS[8], KEYS[4], KEYS[6], KEYS[7],
                                   KEYS[10], ARGV[5], sid, KEYS[9], now, {})
if live == 0 and released == 0 then
  local before = redis.call('GET', KEYS[11])
  if before then return {'ok', 0, tonumber(before), 1} end
  return {'ok', 0, 0, 0}
end
-- pcall: Redis at maxmemory refuses the note; the end stands, and a retry answers 404.
redis.pcall('SET', KEYS[11], released, 'PX', ARGV[6])
return {'ok', live, released, 0}
