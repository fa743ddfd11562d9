-- Revoke an API key, in bounded steps: admin.py calls this until it answers done.
-- The first call ('start') takes the key out of its workspace's table, so every replica
-- refuses it from the next request on (admit() in lib.lua), and none of its sessions can
-- claim or renew anything after it. Every call then ends a bounded share of the sessions
-- the key speaks for, releasing what they hold (the reservations of its idle sessions too):
--   'files':    the files its sessions hold, from the key's own index (keyfiles): the
--               owner of each lock is ended whole. A call walks at most FILES_PER_CALL
--               entries and stops once it released FILES_PER_CALL files, so its work is
--               at most that plus one session's cap (COORDINATOR_MAX_FILES_PER_SESSION).
--   'sessions': the key's sessions that hold nothing, from the workspace's sessions index,
--               SESSIONS_PER_CALL members a call in the order of their expiry, up to the
--               newest expiry the first call saw (the horizon: a session renewed since is
--               another key's, as the revoked key's can renew nothing).
-- KEYS, ARGV[1..14]: the head of lib.lua, for the key revoked (its digest, rate bucket
-- and files)
-- own ARGV: stage: 'start' | 'files' | 'sessions', horizon (from 'start'), the sessions
--           walk's cursor: score and member ('' from the start)
-- publishes, for each session: 'released' per file, then 'ended' (reason 'revoked')
-- returns {'ok', sessions ended, files released, next stage ('' when done), horizon,
--          cursor score, cursor member}
local FILES_PER_CALL, SESSIONS_PER_CALL = 500, 500
local stage, horizon, after_score, after_member = own_args(4)
local now = now_ms()

if stage == 'start' then
  redis.call('HDEL', K.api_keys, DIGEST)
  redis.call('DEL', K.rate)
  local newest = redis.call('ZRANGE', K.sessions, -1, -1, 'WITHSCORES')
  horizon = newest[2] and string.format('%.0f', tonumber(newest[2])) or '0'
  stage = 'files'
end

local ended, released = 0, 0
local function end_of_key(sid)
  local _, freed, sessions = end_session(sid, now, {reason = 'revoked'})
  ended, released = ended + sessions, released + freed
end

local function done(next_stage, score, member)
  return {'ok', ended, released, next_stage, horizon, score or '', member or ''}
end

if stage == 'files' then
  for _, path in ipairs(redis.call('ZRANGE', K.key_files, 0, FILES_PER_CALL - 1)) do
    if released >= FILES_PER_CALL then break end
    local owner = redis.call('GET', lock_of(path))
    if owner then
      local owner_key = redis.call('HGET', P.holder .. owner, 'key_id')
        or redis.call('HGET', P.session .. owner, 'key_id')
      if owner_key == CALLER then end_of_key(owner) end
    end
    -- Gone whether its session was ended, or the lock lapsed or is another key's now.
    redis.call('ZREM', K.key_files, path)
  end
  if redis.call('EXISTS', K.key_files) == 1 then return done('files') end
  return done('sessions')
end

-- 'sessions': from the member after the cursor (or, if it moved, from its old score on).
local start = resume_at(K.sessions, after_score ~= '' and after_score, after_member, false)
local flat = redis.call('ZRANGE', K.sessions, start, start + SESSIONS_PER_CALL - 1, 'WITHSCORES')
for i = 1, #flat, 2 do
  local sid, score = flat[i], flat[i + 1]
  if tonumber(score) > tonumber(horizon) then return done('') end
  if redis.call('HGET', P.session .. sid, 'key_id') == CALLER then
    end_of_key(sid)
  else
    after_score, after_member = score, sid
  end
  if released >= FILES_PER_CALL and i + 1 < #flat then
    return done('sessions', after_score, after_member)
  end
end
if #flat < 2 * SESSIONS_PER_CALL then return done('') end
return done('sessions', after_score, after_member)
