-- Revoke an API key: out of its workspace's table (so every replica refuses it from
-- the next request on), and end every session it speaks for, releasing what they
-- hold, including the reservations of its sessions that have gone idle.
-- KEYS[1] = workspace api keys (hash)   KEYS[2] = the key's rate bucket (hash)
-- KEYS[3] = sessions index (zset)       KEYS[4] = locks index (zset)
-- KEYS[5] = the workspace's events channel
-- ARGV[1] = api key digest   ARGV[2] = key id (what sessions and holder cards record)
-- ARGV[3..7] = key prefixes of sessions, files, holder cards, told and locks
-- publishes, for each session: 'released' per file, then 'ended' (reason 'revoked')
-- returns {'ok', sessions ended, files released}
local key_id = ARGV[2]
local session_prefix, files_prefix, holder_prefix, told_prefix, lock_prefix =
  ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])

local doomed, seen = {}, {}
local function doom(sid)
  if not seen[sid] then
    seen[sid] = true
    doomed[#doomed + 1] = sid
  end
end
for _, sid in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  if redis.call('HGET', session_prefix .. sid, 'key_id') == key_id then doom(sid) end
end
for _, path in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  local owner = redis.call('GET', lock_of(lock_prefix, path))
  if owner and redis.call('HGET', holder_prefix .. owner, 'key_id') == key_id then doom(owner) end
end

local ended, released, now = 0, 0, now_ms()
for _, sid in ipairs(doomed) do
  local who = redis.call('HMGET', session_prefix .. sid, 'user_name', 'agent_type')
  if not who[1] then who = redis.call('HMGET', holder_prefix .. sid, 'user_name', 'agent_type') end
  local live = redis.call('DEL', session_prefix .. sid)
  ended = ended + live
  redis.call('DEL', holder_prefix .. sid, told_prefix .. sid)
  redis.call('ZREM', KEYS[3], sid)
  released = released
    + release_holdings(files_prefix .. sid, KEYS[4], lock_prefix, sid, KEYS[5], now, who)
  if live == 1 then publish(KEYS[5], 'ended', now, sid, who, {reason = 'revoked'}) end
end
return {'ok', ended, released}
