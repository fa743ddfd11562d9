-- The first of the files transport.py puts in front of every script (then listings.lua,
-- event.lua, claims.lua), and the one layout of what every script is called with
-- (store.py's and admin.py's head: keys.script_keys, keys.prefixes), unpacked here once:
-- KEYS[1] = the workspace's API keys (hash)   KEYS[2] = the calling key's rate bucket (hash)
-- KEYS[3] = sessions index (zset)             KEYS[4] = locks index (zset)
-- KEYS[5] = decisions (list)                  KEYS[6] = the workspace's events channel
-- KEYS[7] = files the sessions of the calling key hold (zset, scored by expiry)
-- KEYS[8] = the workspace (hash)
-- KEYS[9] = directory and glob claims (hash)  KEYS[10] = requests for files (hash)
-- and for a script of one session (heartbeat, end, roots and the events' scripts):
-- KEYS[11] = session (hash)         KEYS[12] = files of the session (set)
-- KEYS[13] = holder card (hash)     KEYS[14] = files the session was told about (hash)
-- KEYS[15] = the project roots its start named (hash; lives as long as the session could)
-- KEYS[16] = the note that the session ended (string: files released)
-- KEYS[17] = the session's notes (list: requests for its files, files handed to it)
-- KEYS[18] = the record of this event (string: its reply, JSON), read and written only
--            by an event whose script gives it a lifetime (begin_event)
-- then the script's own keys, from FIRST_KEY.
-- ARGV[1] = the calling key's digest   ARGV[2] = tokens per second (0: no limit)
-- ARGV[3] = burst   ARGV[4] = session TTL ms   ARGV[5] = reservation TTL ms
-- ARGV[6] = hand-off grace ms (how long a freed file is held for the first in line)
-- ARGV[7..13] = key prefixes of sessions, files, holder cards, told, locks, subagents and
--               notes
-- ARGV[14] = the session's id ('' for a script of no session)
-- then the script's own arguments, from FIRST_ARG (own_args).
-- Every script answers a table whose first element is its status: 'ok', 'revoked',
-- 'not_owner', ... (replies.py reads them all).
-- Keys named from a prefix (P.lock .. path, P.session .. sid) are the only keys built
-- here: which files a session holds, or which sessions a listing shows, is known only
-- inside the script, and all of them carry the workspace's hash tag, so they live in the
-- same slot as the declared keys.
local K = {
  api_keys = KEYS[1], rate = KEYS[2], sessions = KEYS[3], locks = KEYS[4],
  decisions = KEYS[5], events = KEYS[6], key_files = KEYS[7], workspace = KEYS[8],
  patterns = KEYS[9], requests = KEYS[10],
  session = KEYS[11], files = KEYS[12], holder = KEYS[13], told = KEYS[14],
  roots = KEYS[15], ended = KEYS[16], notes = KEYS[17], once = KEYS[18],
}
local FIRST_KEY = 19
local P = {session = ARGV[7], files = ARGV[8], holder = ARGV[9], told = ARGV[10], lock = ARGV[11],
           subagents = ARGV[12], notes = ARGV[13]}
local DIGEST = ARGV[1]
-- The key_id (the digest's head, as models.key_id_of takes it) sessions record.
local CALLER = string.sub(DIGEST, 1, 16)
local RATE, BURST = tonumber(ARGV[2]), tonumber(ARGV[3])
local SESSION_TTL, RESERVATION_TTL = tonumber(ARGV[4]), tonumber(ARGV[5])
local HAND_OFF_GRACE = tonumber(ARGV[6])
local SID = ARGV[14]
local FIRST_ARG = 15
-- A lock whose value is a session id and NEXT is held for that session, the first in line
-- for the file, for the hand-off grace (claims.lua); it is not yet among its files.
local NEXT = ' next'
-- Defined in claims.lua (directory/glob claims and the request queues), which comes
-- after this file: the claim, release and end below call them.
local blocked_claim, note_pattern, pass_on_freed, leave_queues, renew_claims, took_hand_off
local take_notes

-- The first `n` of the script's own arguments.
local function own_args(n)
  return unpack(ARGV, FIRST_ARG, FIRST_ARG + n - 1)
end

-- A claim names a whole file (its path) or one symbol of it: the path, SYMBOL, the
-- symbol's name (paths never hold a NUL: paths.py refuses it). Files sets, the locks
-- and key indexes and `told` hold claims; a symbol claim counts toward the caps as a file.
local SYMBOL = '\0'

-- The path and the symbol (nil: the whole file) of a claim.
local function split_claim(claim)
  local at = string.find(claim, SYMBOL, 1, true)
  if not at then return claim, nil end
  return string.sub(claim, 1, at - 1), string.sub(claim, at + 1)
end

-- The lock of a claim: one for every spelling of its path that differs only in case
-- (a symbol's name keeps its case). string.lower folds ASCII letters only (Redis runs
-- Lua in the C locale), as paths.fold_case does; keys.claim_lock builds the same.
local function lock_of(claim)
  local at = string.find(claim, SYMBOL, 1, true)
  if not at then return P.lock .. string.lower(claim) end
  return P.lock .. string.lower(string.sub(claim, 1, at - 1)) .. string.sub(claim, at)
end

-- The symbols of a file claimed by anyone (a hash: name -> kind), so that a whole-file
-- claim finds them. It lives as long as its newest claim; an entry whose lock lapsed is
-- dropped when next read (symbol_conflict).
local function symbols_of(path)
  return P.lock .. string.lower(path) .. SYMBOL
end

-- A symbol claim's lock was given `ttl`: its file's hash of symbols lives as long (never
-- shorter than another symbol's of the file).
local function keep_symbol_index(claim, ttl)
  local path, symbol = split_claim(claim)
  if not symbol then return end
  local index = symbols_of(path)
  if redis.call('PTTL', index) < ttl then redis.call('PEXPIRE', index, ttl) end
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Every script of a key's request starts with admit(): the key must still stand in its
-- workspace's table and be within its rate. Returns the reply to give instead, or nil.
-- A replica caches API keys; checking the workspace's key table here makes a
-- revocation count on the very next request, at no extra round trip.
-- `kind` 'read' (stores nothing) or 'end' (frees memory): the script goes on when Redis is
-- full (at maxmemory under noeviction), the request uncounted; any other script is a
-- write and answers {'full'} then, having changed nothing. Full is learnt from the bucket's
-- write, the script's first: Redis refuses a script's first write that may grow memory
-- while it is over maxmemory (and lets the later ones through).
local function admit(kind)
  if redis.call('HEXISTS', K.api_keys, DIGEST) == 0 then return {'revoked'} end
  if RATE <= 0 then return nil end
  -- A token bucket: full at BURST, refilled at RATE per second, one token a request.
  local now = now_ms()
  local bucket = redis.call('HMGET', K.rate, 'tokens', 'at_ms')
  local tokens = tonumber(bucket[1]) or BURST
  tokens = math.min(BURST, tokens + (now - (tonumber(bucket[2]) or now)) * RATE / 1000)
  if tokens < 1 then
    local retry_ms = math.ceil((1 - tokens) * 1000 / RATE)
    local full_ms = math.ceil((BURST - tokens) * 1000 / RATE)
    return {'limited', retry_ms, math.floor(tokens), full_ms}
  end
  tokens = tokens - 1
  local stored = redis.pcall('HSET', K.rate, 'tokens', tostring(tokens), 'at_ms', now)
  if type(stored) == 'table' and stored.err then
    if not string.find(stored.err, '^OOM') then return redis.error_reply(stored.err) end
    if kind == 'read' or kind == 'end' then return nil end
    return {'full'}
  end
  -- A full bucket is the same as none: let it go once it would be full again.
  redis.call('PEXPIRE', K.rate, math.ceil((BURST - tokens) * 1000 / RATE))
  return nil
end

-- A session belongs to the API key that started it: the key_id that its hash, or the
-- holder card of its reservations once it went idle (or its roots), records. Returns
-- {'not_owner'} when any of the hashes names another key than the caller's, or nil.
local function refuse_other_key(...)
  for _, hash in ipairs({...}) do
    local owner = redis.call('HGET', hash, 'key_id')
    if owner and owner ~= '' and owner ~= CALLER then return {'not_owner'} end
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

-- Lets `key` live at least `ttl` ms more (never shortens it: a reserve's minutes may have
-- made it longer than the reservation TTL).
local function extend(key, ttl)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
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
local function holdings(files, sid)
  local held, lost = {}, {}
  for _, path in ipairs(redis.call('SMEMBERS', files)) do
    if redis.call('GET', lock_of(path)) == sid then
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

-- Keeps every reservation of the session alive; forgets those it no longer holds.
-- The calling key's files follow along. Returns how many it still holds: at most the cap
-- on files per session, which is what bounds this (docs/operations.md, "Operating it
-- safely"): two commands a file, the indexes' writes batched.
local function refresh_holdings(now)
  local held = holdings(K.files, SID)
  if #held == 0 then return 0 end
  -- GT: a reservation made for longer (reserve's minutes) is never shortened by one.
  for _, claim in ipairs(held) do
    redis.call('PEXPIRE', lock_of(claim), RESERVATION_TTL, 'GT')
    keep_symbol_index(claim, RESERVATION_TTL)
  end
  local expiry = scored(held, now + RESERVATION_TTL)
  batched('ZADD', {K.locks, 'GT'}, expiry)
  batched('ZADD', {K.key_files, 'GT'}, expiry)
  extend(K.files, RESERVATION_TTL)
  extend(K.holder, RESERVATION_TTL)
  lapse_with_newest(K.locks)
  lapse_with_newest(K.key_files)
  return #held
end

-- Publishes one event of the live stream on the workspace's channel (docs/api.md, "Live
-- events"): JSON with its type, the time, the session and who runs it, then `fields`.
-- Without subscribers a PUBLISH costs next to nothing; on a cluster it reaches the
-- subscribers of every node. `who` = {user_name, agent_type} ('' or false: unknown).
local function publish(kind, now, sid, who, fields)
  local function known(value)
    if value and value ~= '' then return value end
    return cjson.null
  end
  if fields.path then
    local path, symbol = split_claim(fields.path)
    fields.path, fields.symbol = path, symbol
  end
  fields.type, fields.at_ms = kind, now
  fields.session_id, fields.user, fields.agent = known(sid), known(who[1]), known(who[2])
  redis.call('PUBLISH', K.events, cjson.encode(fields))
end

-- Deletes the locks of `paths`, which the session `sid` holds, each published as
-- 'released' as the session `who`; its file set and the calling key's files forget them,
-- and a file others queue for passes to the first in line (claims.lua). Returns how many.
local function release_paths(files, sid, paths, now, who)
  if #paths == 0 then return 0 end
  local locks = {}
  for i, claim in ipairs(paths) do
    locks[i] = lock_of(claim)
    local path, symbol = split_claim(claim)
    if symbol then redis.call('HDEL', symbols_of(path), symbol) end
  end
  batched('DEL', {}, locks)
  batched('SREM', {files}, paths)
  batched('ZREM', {K.locks}, paths)
  batched('ZREM', {K.key_files}, paths)
  for _, path in ipairs(paths) do
    publish('released', now, sid, who, {path = path, expires_at_ms = now})
  end
  pass_on_freed(paths, now)
  return #paths
end

-- Deletes every lock a session holds (and only those): release_paths of its holdings.
local function release_holdings(files, sid, now, who)
  local held = holdings(files, sid)
  redis.call('DEL', files)
  return release_paths(files, sid, held, now, who)
end

-- Ends the session `sid` of the calling key, live or gone idle, and its subagents first:
-- forgets it, its holder card and what it was told, releases every lock it holds (each
-- published as 'released'), then publishes 'ended' with `fields` if it was live.
-- Returns whether it was live (0|1), how many files it (and its subagents) released, and
-- how many live sessions it ended (its live subagents counted).
local function end_session(sid, now, fields)
  local session, holder, family = P.session .. sid, P.holder .. sid, P.subagents .. sid
  local released, ended = 0, 0
  for _, child in ipairs(redis.call('SMEMBERS', family)) do
    local live, freed = end_session(child, now, {reason = 'parent_ended'})
    released, ended = released + freed, ended + live
  end
  redis.call('DEL', family)
  -- Who the session was: its own hash, or the holder card of a session gone idle.
  local who = redis.call('HMGET', session, 'user_name', 'agent_type', 'parent')
  if not who[1] then who = redis.call('HMGET', holder, 'user_name', 'agent_type', 'parent') end
  if who[3] and who[3] ~= '' then redis.call('SREM', P.subagents .. who[3], sid) end
  local live = redis.call('DEL', session)
  redis.call('DEL', holder, P.told .. sid)
  redis.call('ZREM', K.sessions, sid)
  released = released + release_holdings(P.files .. sid, sid, now, who)
  leave_queues(sid, now)
  redis.call('DEL', P.notes .. sid)
  if live == 1 then publish('ended', now, sid, who, fields) end
  return live, released, ended + live
end
