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
-- it went idle (or its roots), records. Returns {'not_owner'} when any of the hashes
-- names another key than the caller's (ARGV[1], see admit()), or nil to go on.
local function refuse_other_key(...)
  local caller = string.sub(ARGV[1], 1, 16)
  for _, hash in ipairs({...}) do
    local owner = redis.call('HGET', hash, 'key_id')
    if owner and owner ~= '' and owner ~= caller then return {'not_owner'} end
  end
  return nil
end

-- Index upkeep. An index (a zset scored by expiry, ms) lives as long as its newest
-- member, so an idle workspace's indexes lapse by themselves (no sweeper exists); its
-- expired members are trimmed a bounded batch at a time, so that no script's work grows
-- with how much once expired at the same moment.
local PRUNE_BATCH = 500

local function lapse_with_newest(index)
  local newest = redis.call('ZRANGE', index, 0, 0, 'REV', 'WITHSCORES')
  if newest[2] then
    redis.call('PEXPIREAT', index, string.format('%.0f', tonumber(newest[2])))
  end
end

local function prune(index, now)
  local expired = redis.call('ZRANGE', index, '-inf', now, 'BYSCORE', 'LIMIT', 0, PRUNE_BATCH)
  if #expired > 0 then redis.call('ZREM', index, unpack(expired)) end
end

-- Calls `command` with the arguments `head` and then every element of `each`, in
-- batches (Lua's unpack has a stack limit): a call per batch, not one per element.
local BATCH = 1000
local function batched(command, head, each)
  for first = 1, #each, BATCH do
    local args = {unpack(head)}
    for i = first, math.min(first + BATCH - 1, #each) do args[#args + 1] = each[i] end
    redis.call(command, unpack(args))
  end
end

-- The paths of `files` whose lock `sid` still holds; forgets the others.
local function holdings(files, lock_prefix, sid)
  local held, lost = {}, {}
  for _, path in ipairs(redis.call('SMEMBERS', files)) do
    if redis.call('GET', lock_of(lock_prefix, path)) == sid then
      held[#held + 1] = path
    else
      lost[#lost + 1] = path
    end
  end
  if #lost > 0 then batched('SREM', {files}, lost) end
  return held
end

-- {score, member, score, member...} of every path at one score.
local function scored(paths, score)
  local pairs_ = {}
  for _, path in ipairs(paths) do
    pairs_[#pairs_ + 1] = score
    pairs_[#pairs_ + 1] = path
  end
  return pairs_
end

-- Keeps every reservation of a session alive; forgets those it no longer holds.
-- `key_files` (the files the sessions of the session's key hold) follows along.
-- Returns how many it still holds: at most the cap on files per session, which is what
-- bounds this script (docs/operations.md, "Operating it safely"): two commands a file, the indexes'
-- writes batched.
local function refresh_holdings(files, holder, locks_index, key_files, lock_prefix, sid, now, ttl)
  local held = holdings(files, lock_prefix, sid)
  if #held == 0 then return 0 end
  for _, path in ipairs(held) do redis.call('PEXPIRE', lock_of(lock_prefix, path), ttl) end
  local expiry = scored(held, now + ttl)
  batched('ZADD', {locks_index}, expiry)
  batched('ZADD', {key_files}, expiry)
  redis.call('PEXPIRE', files, ttl)
  redis.call('PEXPIRE', holder, ttl)
  lapse_with_newest(locks_index)
  lapse_with_newest(key_files)
  return #held
end

-- Publishes one event of the live stream on the workspace's channel (docs/api.md, "Live
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
-- is published on `channel` (nil: not published) as the session `who`. `key_files`
-- (nil: none) forgets them too.
local function release_holdings(files, locks_index, lock_prefix, sid, channel, now, who, key_files)
  local held = holdings(files, lock_prefix, sid)
  redis.call('DEL', files)
  if #held == 0 then return 0 end
  local locks = {}
  for i, path in ipairs(held) do locks[i] = lock_of(lock_prefix, path) end
  batched('DEL', {}, locks)
  batched('ZREM', {locks_index}, held)
  if key_files then batched('ZREM', {key_files}, held) end
  if channel then
    for _, path in ipairs(held) do
      publish(channel, 'released', now, sid, who, {path = path, expires_at_ms = now})
    end
  end
  return #held
end

-- Ends a session, live or gone idle: forgets it, its holder card and what it was told,
-- releases every lock it holds (each published as 'released'), then publishes 'ended'
-- with `fields` if it was live. `key_files`: as in release_holdings.
-- Returns whether it was live (0|1) and how many files it released.
local function end_session(session, holder, told, files, sessions_index, locks_index,
                           key_files, lock_prefix, sid, channel, now, fields)
  -- Who the session was: its own hash, or the holder card of a session gone idle.
  local who = redis.call('HMGET', session, 'user_name', 'agent_type')
  if not who[1] then who = redis.call('HMGET', holder, 'user_name', 'agent_type') end
  local live = redis.call('DEL', session)
  redis.call('DEL', holder, told)
  redis.call('ZREM', sessions_index, sid)
  local released = release_holdings(files, locks_index, lock_prefix, sid, channel, now, who,
                                    key_files)
  if live == 1 then publish(channel, 'ended', now, sid, who, fields) end
  return live, released
end

-- One page of an index, longest-lived first: {{member, score}...} of at most `limit`
-- live members, after the cursor (`after_score`, `after_member`; false: from the start),
-- and whether more may follow. A member renewed since the cursor was given moved ahead
-- of it; when the cursor's own member moved, the page starts at its old score (a member
-- of the same score may show twice, none is skipped).
local function index_page(index, now, limit, after_score, after_member)
  local start = 0
  if after_score then
    local rank = redis.call('ZREVRANK', index, after_member)
    if rank and tonumber(redis.call('ZSCORE', index, after_member)) == tonumber(after_score) then
      start = rank + 1
    else
      start = redis.call('ZCOUNT', index, '(' .. after_score, '+inf')
    end
  end
  -- One member past the page tells whether a live one follows it.
  local flat = redis.call('ZRANGE', index, start, start + limit, 'REV', 'WITHSCORES')
  local page = {}
  for i = 1, #flat, 2 do
    if tonumber(flat[i + 1]) <= now then return page, false end
    if #page == limit then return page, true end
    page[#page + 1] = {flat[i], flat[i + 1]}
  end
  return page, false
end

-- The cursor of the page after `page` when more may follow, else false.
local function next_cursor(page, more)
  if not more or #page == 0 then return false end
  local last = page[#page]
  return {last[2], last[1]}
end

-- A page of the live sessions of a workspace, newest first, each as
-- {field values..., {paths it holds...}}; `fields` are read from its hash, 'id' first.
-- A page ends early once it lists `file_budget` files (after its first session), so its
-- work is bounded by limit + file_budget + one session's cap. Returns rows, next cursor.
local function live_sessions(index, session_prefix, files_prefix, lock_prefix, fields, now,
                             limit, file_budget, after_score, after_member)
  prune(index, now)
  local page, more = index_page(index, now, limit, after_score, after_member)
  local sessions, listed, files = {}, {}, 0
  for _, entry in ipairs(page) do
    if files >= file_budget then
      more = true
      break
    end
    local sid = entry[1]
    listed[#listed + 1] = entry
    local values = redis.call('HMGET', session_prefix .. sid, unpack(fields))
    if values[1] then
      local held = {}
      for _, path in ipairs(redis.call('SMEMBERS', files_prefix .. sid)) do
        if redis.call('GET', lock_of(lock_prefix, path)) == sid then held[#held + 1] = path end
      end
      files = files + #held
      sessions[#sessions + 1] = {values, held}
    end
  end
  return sessions, next_cursor(listed, more)
end

-- A page of the live reservations of a workspace, longest-lived first, each as
-- {path, sid, pttl, user_name, current_task, conversation_id, agent_type}.
-- Returns rows, next cursor.
local function live_reservations(index, lock_prefix, holder_prefix, now, limit, after_score,
                                 after_member)
  prune(index, now)
  local page, more = index_page(index, now, limit, after_score, after_member)
  -- A lock and its index entry are written together, so the score is its expiry.
  local reservations, cards = {}, {}
  for _, entry in ipairs(page) do
    local path = entry[1]
    local sid = redis.call('GET', lock_of(lock_prefix, path))
    if sid then
      local card = cards[sid]
      if not card then
        card = redis.call('HMGET', holder_prefix .. sid, 'user_name', 'current_task',
                          'conversation_id', 'agent_type')
        cards[sid] = card
      end
      reservations[#reservations + 1] = {path, sid, tonumber(entry[2]) - now, unpack(card)}
    end
  end
  return reservations, next_cursor(page, more)
end
