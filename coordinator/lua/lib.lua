-- Helpers that store.py puts in front of every other script of this folder.
-- Every script answers a table whose first element is its status: 'ok', 'revoked',
-- 'not_owner', ...
-- Keys named from a prefix in ARGV (lock_of(lock_prefix, path)) are the only keys built
-- here: which files a session holds is known only inside the script, and all of them carry
-- the workspace's hash tag, so they live in the same slot as the declared keys.

-- The lock of a path: one for every spelling that differs only in case. string.lower
-- folds ASCII letters only (Redis runs Lua in the C locale), as paths.fold_case does.
local function lock_of(lock_prefix, path)
  return lock_prefix .. string.lower(path)
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Every script starts with admit(): KEYS[1] = the workspace's API keys (hash),
-- KEYS[2] = the key's rate bucket (hash), ARGV[1] = the key's digest,
-- ARGV[2] = tokens per second (0: no limit), ARGV[3] = burst; the script's own keys and
-- arguments follow. Returns the reply to give instead, or nil to go on.
-- A replica caches API keys; checking the workspace's key table here makes a
-- revocation count on the very next request, at no extra round trip.
-- `kind` 'read' (stores nothing) or 'end' (frees memory): the script goes on when Redis is
-- full (at maxmemory under noeviction), the request uncounted; any other script is a
-- write and answers {'full'} then, having changed nothing. Full is learnt from the bucket's
-- write, the script's first: Redis refuses a script's first write that may grow memory
-- while it is over maxmemory (and lets the later ones through).
local function admit(kind)
  if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return {'revoked'} end
  local rate, burst = tonumber(ARGV[2]), tonumber(ARGV[3])
  if rate <= 0 then return nil end
  -- A token bucket: full at `burst`, refilled at `rate` per second, one token a request.
  local now = now_ms()
  local bucket = redis.call('HMGET', KEYS[2], 'tokens', 'at_ms')
  local tokens = tonumber(bucket[1]) or burst
  tokens = math.min(burst, tokens + (now - (tonumber(bucket[2]) or now)) * rate / 1000)
  if tokens < 1 then
    local retry_ms = math.ceil((1 - tokens) * 1000 / rate)
    local full_ms = math.ceil((burst - tokens) * 1000 / rate)
    return {'limited', retry_ms, math.floor(tokens), full_ms}
  end
  tokens = tokens - 1
  local stored = redis.pcall('HSET', KEYS[2], 'tokens', tostring(tokens), 'at_ms', now)
  if type(stored) == 'table' and stored.err then
    if not string.find(stored.err, '^OOM') then return redis.error_reply(stored.err) end
    if kind == 'read' or kind == 'end' then return nil end
    return {'full'}
  end
  -- A full bucket is the same as none: let it go once it would be full again.
  redis.call('PEXPIRE', KEYS[2], math.ceil((burst - tokens) * 1000 / rate))
  return nil
end

-- A session belongs to the API key that started it: the key_id (the digest's head, as
-- models.key_id_of takes it) that its hash, or the holder card of its reservations once
-- it went idle, records. Returns {'not_owner'} when either names another key than the
-- caller's (ARGV[1], see admit()), or nil to go on.
local function refuse_other_key(session, holder)
  local caller = string.sub(ARGV[1], 1, 16)
  for _, owner in ipairs({redis.call('HGET', session, 'key_id'), redis.call('HGET', holder, 'key_id')}) do
    if owner and owner ~= '' and owner ~= caller then return {'not_owner'} end
  end
  return nil
end

-- Keeps every reservation of a session alive; forgets those it no longer holds.
-- Returns how many it still holds.
local function refresh_holdings(files, holder, locks_index, lock_prefix, sid, now, ttl)
  local held = 0
  for _, path in ipairs(redis.call('SMEMBERS', files)) do
    local lock = lock_of(lock_prefix, path)
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

-- Publishes one event of the live stream on the workspace's channel (README, "Live
-- events"): JSON with its type, the time, the session and who runs it, then `fields`.
-- Without subscribers a PUBLISH costs next to nothing; on a cluster it reaches the
-- subscribers of every node. `who` = {user_name, agent_type} ('' or false: unknown).
local function publish(channel, kind, now, sid, who, fields)
  local function known(value)
    if value and value ~= '' then return value end
    return cjson.null
  end
  fields.type, fields.at_ms = kind, now
  fields.session_id, fields.user, fields.agent = known(sid), known(who[1]), known(who[2])
  redis.call('PUBLISH', channel, cjson.encode(fields))
end

-- Deletes the locks a session holds (and only those); returns how many. Each release
-- is published on `channel` (nil: not published) as the session `who`.
local function release_holdings(files, locks_index, lock_prefix, sid, channel, now, who)
  local released = 0
  for _, path in ipairs(redis.call('SMEMBERS', files)) do
    local lock = lock_of(lock_prefix, path)
    if redis.call('GET', lock) == sid then
      redis.call('DEL', lock)
      redis.call('ZREM', locks_index, path)
      released = released + 1
      if channel then
        publish(channel, 'released', now, sid, who, {path = path, expires_at_ms = now})
      end
    end
  end
  redis.call('DEL', files)
  return released
end

-- The live sessions of a workspace, newest first, at most `limit` (negative: all), each
-- as {field values..., {paths it holds...}}; `fields` are read from its hash, 'id' first.
-- Prunes the index of what expired (its readers skip that by score anyway).
local function live_sessions(index, session_prefix, files_prefix, lock_prefix, fields, now, limit)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
  local sessions = {}
  for _, sid in ipairs(redis.call('ZRANGE', index, '+inf', '(' .. now, 'BYSCORE', 'REV', 'LIMIT', 0, limit)) do
    local values = redis.call('HMGET', session_prefix .. sid, unpack(fields))
    if values[1] then
      local held = {}
      for _, path in ipairs(redis.call('SMEMBERS', files_prefix .. sid)) do
        if redis.call('GET', lock_of(lock_prefix, path)) == sid then held[#held + 1] = path end
      end
      sessions[#sessions + 1] = {values, held}
    end
  end
  return sessions
end

-- The live reservations of a workspace, longest-lived first, at most `limit` (negative:
-- all), each as {path, sid, pttl, user_name, current_task, conversation_id, agent_type}.
local function live_reservations(index, lock_prefix, holder_prefix, now, limit)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
  local reservations = {}
  for _, path in ipairs(redis.call('ZRANGE', index, '+inf', '(' .. now, 'BYSCORE', 'REV', 'LIMIT', 0, limit)) do
    local lock = lock_of(lock_prefix, path)
    local sid = redis.call('GET', lock)
    if sid then
      local card = redis.call('HMGET', holder_prefix .. sid, 'user_name', 'current_task',
                              'conversation_id', 'agent_type')
      reservations[#reservations + 1] = {path, sid, redis.call('PTTL', lock), unpack(card)}
    end
  end
  return reservations
end
