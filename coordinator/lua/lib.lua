-- Helpers that store.py puts in front of every other script of this folder.
-- Every script answers a table whose first element is its status: 'ok', 'revoked', ...
-- Keys named from a prefix in ARGV (lock_prefix .. path) are the only keys built here:
-- which files a session holds is known only inside the script, and all of them carry
-- the workspace's hash tag, so they live in the same slot as the declared keys.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A replica caches API keys; checking the workspace's key table here makes a
-- revocation count on the very next request, at no extra round trip.
local function key_revoked(apikeys, digest)
  return redis.call('HEXISTS', apikeys, digest) == 0
end

-- Keeps every reservation of a session alive; forgets those it no longer holds.
-- Returns how many it still holds.
local function refresh_holdings(files, holder, locks_index, lock_prefix, sid, now, ttl)
  local held = 0
  for _, path in ipairs(redis.call('SMEMBERS', files)) do
    local lock = lock_prefix .. path
    if redis.call('GET', lock) == sid then
      redis.call('PEXPIRE', lock, ttl)
      redis.call('ZADD', locks_index, now + ttl, path)
      held = held + 1
    else
      redis.call('SREM', files, path)
    end
  end
  if held > 0 then
    redis.call('PEXPIRE', files, ttl)
    redis.call('PEXPIRE', holder, ttl)
  end
  return held
end

-- Deletes the locks a session holds (and only those); returns how many.
local function release_holdings(files, locks_index, lock_prefix, sid)
  local released = 0
  for _, path in ipairs(redis.call('SMEMBERS', files)) do
    local lock = lock_prefix .. path
    if redis.call('GET', lock) == sid then
      redis.call('DEL', lock)
      redis.call('ZREM', locks_index, path)
      released = released + 1
    end
  end
  redis.call('DEL', files)
  return released
end
