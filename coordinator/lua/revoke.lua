-- Revoke an API key, in bounded steps: store.py calls this until it answers done.
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
-- KEYS[1] = workspace api keys (hash)   KEYS[2] = the key's rate bucket (hash)
-- KEYS[3] = sessions index (zset)       KEYS[4] = locks index (zset)
-- KEYS[5] = the workspace's events channel
-- KEYS[6] = files the key's sessions hold (zset)
-- ARGV[1] = api key digest   ARGV[2] = key id (what sessions and holder cards record)
-- ARGV[3..7] = key prefixes of sessions, files, holder cards, told and locks
-- ARGV[8] = stage: 'start' | 'files' | 'sessions'   ARGV[9] = horizon (from 'start')
-- ARGV[10], ARGV[11] = the sessions walk's cursor: score and member ('' from the start)
-- publishes, for each session: 'released' per file, then 'ended' (reason 'revoked')
-- returns {'ok', sessions ended, files released, next stage ('' when done), horizon,
--          cursor score, cursor member}
local FILES_PER_CALL, SESSIONS_PER_CALL = 500, 500
local sessions_index, locks_index, events, key_files = KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local key_id = ARGV[2]
local session_prefix, files_prefix, holder_prefix, told_prefix, lock_prefix =
  ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local stage, horizon = ARGV[8], ARGV[9]
local after_score, after_member = ARGV[10], ARGV[11]
local now = now_ms()

if stage == 'start' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[2])
  local newest = redis.call('ZRANGE', sessions_index, -1, -1, 'WITHSCORES')
  horizon = newest[2] and string.format('%.0f', tonumber(newest[2])) or '0'
  stage = 'files'
end

local ended, released = 0, 0
local function end_of_key(sid)
  local live, freed = end_session(session_prefix .. sid, holder_prefix .. sid,
                                  told_prefix .. sid, files_prefix .. sid, sessions_index,
                                  locks_index, key_files, lock_prefix, sid, events, now,
                                  {reason = 'revoked'})
  ended, released = ended + live, released + freed
end

local function done(next_stage, score, member)
  return {'ok', ended, released, next_stage, horizon, score or '', member or ''}
end

if stage == 'files' then
  for _, path in ipairs(redis.call('ZRANGE', key_files, 0, FILES_PER_CALL - 1)) do
    if released >= FILES_PER_CALL then break end
    local owner = redis.call('GET', lock_of(lock_prefix, path))
    if owner then
      local owner_key = redis.call('HGET', holder_prefix .. owner, 'key_id')
        or redis.call('HGET', session_prefix .. owner, 'key_id')
      if owner_key == key_id then end_of_key(owner) end
    end
    -- Gone whether its session was ended, or the lock lapsed or is another key's now.
    redis.call('ZREM', key_files, path)
  end
  if redis.call('EXISTS', key_files) == 1 then return done('files') end
  return done('sessions')
end

-- 'sessions': from the member after the cursor (or, if it moved, from its old score on).
local start = 0
if after_score ~= '' then
  local rank = redis.call('ZRANK', sessions_index, after_member)
  if rank and tonumber(redis.call('ZSCORE', sessions_index, after_member)) == tonumber(after_score) then
    start = rank + 1
  else
    start = redis.call('ZCOUNT', sessions_index, '-inf', '(' .. after_score)
  end
end
local flat = redis.call('ZRANGE', sessions_index, start, start + SESSIONS_PER_CALL - 1, 'WITHSCORES')
for i = 1, #flat, 2 do
  local sid, score = flat[i], flat[i + 1]
  if tonumber(score) > tonumber(horizon) then return done('') end
  if redis.call('HGET', session_prefix .. sid, 'key_id') == key_id then
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
