-- Helpers that transport.py puts in front of every other script of this folder, and the one
-- layout of what every script is called with (store.py's and admin.py's head: keys.script_keys,
-- keys.prefixes), unpacked here once, by name:
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

-- Where a walk of an index resumes after the cursor (`after_score`, `after_member`;
-- false: from the start), in rank order (`reverse`: from the highest score). A member
-- renewed since the cursor was given moved ahead of it; when the cursor's own member
-- moved, the walk resumes at its old score (a member of the same score may show twice,
-- none is skipped).
local function resume_at(index, after_score, after_member, reverse)
  if not after_score then return 0 end
  local rank = redis.call(reverse and 'ZREVRANK' or 'ZRANK', index, after_member)
  if rank and tonumber(redis.call('ZSCORE', index, after_member)) == tonumber(after_score) then
    return rank + 1
  end
  if reverse then return redis.call('ZCOUNT', index, '(' .. after_score, '+inf') end
  return redis.call('ZCOUNT', index, '-inf', '(' .. after_score)
end

-- One page of an index, longest-lived first: {{member, score}...} of at most `limit`
-- live members, after the cursor (as resume_at), and whether more may follow.
local function index_page(index, now, limit, after_score, after_member)
  local start = resume_at(index, after_score, after_member, true)
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

-- A page of the live sessions of the workspace, newest first, each as
-- {field values..., {paths it holds...}}; `fields` are read from its hash, 'id' first.
-- A page ends early once it lists `file_budget` files (after its first session), so its
-- work is bounded by limit + file_budget + one session's cap. Returns rows, next cursor.
local function live_sessions(fields, now, limit, file_budget, after_score, after_member)
  prune(K.sessions, now)
  local page, more = index_page(K.sessions, now, limit, after_score, after_member)
  local sessions, listed, files = {}, {}, 0
  for _, entry in ipairs(page) do
    if files >= file_budget then
      more = true
      break
    end
    local sid = entry[1]
    listed[#listed + 1] = entry
    local values = redis.call('HMGET', P.session .. sid, unpack(fields))
    if values[1] then
      local held = {}
      for _, path in ipairs(redis.call('SMEMBERS', P.files .. sid)) do
        if redis.call('GET', lock_of(path)) == sid then held[#held + 1] = path end
      end
      files = files + #held
      sessions[#sessions + 1] = {values, held}
    end
  end
  return sessions, next_cursor(listed, more)
end

-- A page of the live reservations of the workspace, longest-lived first, each as
-- {path, sid, pttl, user_name, current_task, conversation_id, agent_type, parent,
-- subagent_type}.
-- Returns rows, next cursor.
local function live_reservations(now, limit, after_score, after_member)
  prune(K.locks, now)
  local page, more = index_page(K.locks, now, limit, after_score, after_member)
  -- A lock and its index entry are written together, so the score is its expiry.
  local reservations, cards = {}, {}
  for _, entry in ipairs(page) do
    local path = entry[1]
    local sid = redis.call('GET', lock_of(path))
    if sid then
      local card = cards[sid]
      if not card then
        card = redis.call('HMGET', P.holder .. sid, 'user_name', 'current_task',
                          'conversation_id', 'agent_type', 'parent', 'subagent_type')
        cards[sid] = card
      end
      reservations[#reservations + 1] = {path, sid, tonumber(entry[2]) - now, unpack(card)}
    end
  end
  return reservations, next_cursor(page, more)
end

-- How many members of an index are live.
local function live_count(index, now)
  return redis.call('ZCOUNT', index, '(' .. now, '+inf')
end

-- The scripts of one hook event (start, prompt, touch, heartbeat) share one session
-- state `s`, opened by open_event() and carried through touch(), claim() and settle():
-- created (0|1), now, old_task (before the event), task, task_sent (the event names
-- one), renewed (its reservations were renewed), held (how many it holds, once known),
-- card_stale (the holder card may name it wrongly), who (user, agent; read once, to
-- publish), reserved (paths newly claimed, published by settle()).
local MAX_TOLD = 200

-- Admits the key and checks the session is its own. Returns the state, or nil and the
-- reply to give instead.
local function open_event()
  local refused = admit() or refuse_other_key(K.session, K.holder)
  if refused then return nil, refused end
  local state = redis.call('HMGET', K.session, 'id', 'renewed_ms', 'current_task', 'parent')
  return {created = state[1] and 0 or 1, renewed_ms = tonumber(state[2]) or 0,
          old_task = state[3], task = state[3], task_sent = false, reserved = {},
          parent = state[4] ~= '' and state[4] or nil}
end

-- Touches (or creates) the session: sets the fields ARGV[first..last], keeps it alive,
-- and renews its reservations when due (`renew`: now, whatever is due).
local function touch(s, conversation, first, last, renew)
  local now = now_ms()
  s.now, s.conversation = now, conversation
  if s.created == 1 then
    redis.call('HSET', K.session, 'id', SID, 'conversation_id', conversation,
               'started_ms', now, 'heard_ms', now)
  end
  redis.call('HSET', K.session, 'last_seen_ms', now, unpack(ARGV, first, last))
  redis.call('PEXPIRE', K.session, SESSION_TTL)
  redis.call('ZADD', K.sessions, now + SESSION_TTL, SID)
  -- The roots outlive the session and its locks by a little, never by more (no-op if none).
  redis.call('PEXPIRE', K.roots, math.max(SESSION_TTL, RESERVATION_TTL))
  lapse_with_newest(K.sessions)
  for i = first, last, 2 do
    if ARGV[i] == 'current_task' then s.task, s.task_sent = ARGV[i + 1], true end
    if ARGV[i] == 'parent' and ARGV[i + 1] ~= '' then s.parent = ARGV[i + 1] end
  end
  if s.parent then
    -- A subagent: its parent's session ends it, and its work keeps that session alive.
    local family = P.subagents .. s.parent
    redis.call('SADD', family, SID)
    redis.call('PEXPIRE', family, math.max(SESSION_TTL, RESERVATION_TTL))
    if redis.call('PEXPIRE', P.session .. s.parent, SESSION_TTL) == 1 then
      redis.call('ZADD', K.sessions, now + SESSION_TTL, s.parent)
    end
  end
  -- Renewing every held lock costs two commands per file, so a busy session renews
  -- them once a quarter of their TTL (and at every start, which reports them): a lock
  -- then always has at least three quarters of its TTL left after its holder's last
  -- event. The cap on files per session bounds it. Trimming a batch of what expired
  -- from the indexes rides along; their readers skip it by score.
  s.renewed = renew or now - s.renewed_ms >= RESERVATION_TTL / 4
  if s.renewed then
    prune(K.sessions, now)
    prune(K.locks, now)
    prune(K.key_files, now)
    s.held = refresh_holdings(now)
    renew_claims()
    redis.call('PEXPIRE', K.told, RESERVATION_TTL)
    redis.call('HSET', K.session, 'renewed_ms', now)
  end
  -- The holder card names whoever holds a file: rewritten when it may have changed.
  s.card_stale = s.renewed or s.task_sent
end

-- The start of every event's script: opens the event and touches its session. The own
-- ARGV of an event's script are: the conversation id, then `count` - 1 of the script's
-- own (with `once`, the last of them is how long to keep the event's record: 0, none),
-- then n and n field/value pairs to set on the session, then (touch.lua) paths.
-- `renew`: as touch(); `live_only`: a session that does not exist yet is not created,
-- the reply is {'missing'}. Returns the state (its first_path: where paths start), or
-- nil and the reply to give instead: for an event recorded already (the same event again),
-- {'again', the reply it got}, and nothing changes.
local function begin_event(renew, count, live_only, once)
  local s, refused = open_event()
  if refused then return nil, refused end
  local at = FIRST_ARG + count
  s.once_ttl = once and tonumber(ARGV[at - 1]) or 0
  if s.once_ttl > 0 then
    local first = redis.call('GET', K.once)
    if first then return nil, {'again', cjson.decode(first)} end
  end
  if live_only and s.created == 1 then return nil, {'missing'} end
  local n = tonumber(ARGV[at])
  s.first_path = at + 1 + 2 * n
  touch(s, ARGV[FIRST_ARG], at + 1, at + 2 * n, renew)
  return s
end

-- Events name the session's user and agent: read once, only to publish something (a
-- claim reads them with the holder card anyway), and published once all is written.
local function publish_event(s, kind, fields)
  if not s.who then s.who = redis.call('HMGET', K.session, 'user_name', 'agent_type') end
  publish(kind, s.now, SID, s.who, fields)
end

local function publish_session_news(s)
  if s.created == 1 then
    publish_event(s, 'started', {task = s.task or cjson.null})
  elseif s.task ~= s.old_task then
    publish_event(s, 'task', {task = s.task})
  end
end

-- Notes the holder the session last heard of for a file (a prompt tells what changed).
local function remember(path, owner)
  local known = redis.call('HLEN', K.told)
  if known < MAX_TOLD or redis.call('HEXISTS', K.told, path) == 1 then
    redis.call('HSET', K.told, path, owner)
    if known == 0 then redis.call('PEXPIRE', K.told, RESERVATION_TTL) end
  end
end

-- {claim, holder sid, pttl, user_name, agent_type, current_task, parent, subagent_type, via,
-- next in line 0|1, symbol kind} of a held claim (parent and subagent_type '' or false
-- unless a subagent holds it): `via` is the directory or glob claim it is held through (''
-- if none); a file held for the next in line names that session (its card: its session's
-- hash); the kind is '' for a whole file.
local function holder_of(claim, lock, owner, via)
  local next_sid = string.match(owner, '^(.-)' .. NEXT .. '$')
  local sid = next_sid or owner
  local card = redis.call('HMGET', (next_sid and P.session or P.holder) .. sid, 'user_name',
                          'agent_type', 'current_task', 'parent', 'subagent_type')
  local path, symbol = split_claim(claim)
  local kind = symbol and redis.call('HGET', symbols_of(path), symbol) or ''
  return {claim, sid, redis.call('PTTL', lock), card[1], card[2], card[3], card[4], card[5],
          via or '', next_sid and 1 or 0, kind}
end

-- Whether the session may take the lock `owner` holds: a subagent edits what its parent
-- holds (the parent delegated it), and the files of a subagent of the same conversation
-- (its own, or a sibling) once that one is gone are its parent's. A running subagent's
-- files are its own: they deny its siblings and its parent.
local function delegated(s, owner)
  if owner == s.parent then return true end
  local owner_parent = redis.call('HGET', P.holder .. owner, 'parent')
  if not owner_parent or owner_parent == '' then return false end
  if owner_parent ~= SID and owner_parent ~= s.parent then return false end
  return redis.call('EXISTS', P.session .. owner) == 0
end

-- Who else holds part of the file a claim names, within that file: a symbol claim
-- overlaps the whole file's claim, a whole-file claim every symbol claim of the file
-- (the session's own, and what it may take (delegated), aside). Returns the claim held,
-- its lock and its owner, or nil. (A claim of the same lock is checked by claim().)
local function symbol_conflict(s, claim)
  local path, symbol = split_claim(claim)
  if symbol then
    local lock = lock_of(path)
    local owner = redis.call('GET', lock)
    if owner and owner ~= SID and owner ~= SID .. NEXT and not delegated(s, owner) then
      return path, lock, owner
    end
    return nil
  end
  local index = symbols_of(path)
  for _, name in ipairs(redis.call('HKEYS', index)) do
    local held = path .. SYMBOL .. name
    local lock = lock_of(held)
    local owner = redis.call('GET', lock)
    if not owner then
      redis.call('HDEL', index, name)
    elseif owner ~= SID and owner ~= SID .. NEXT and not delegated(s, owner) then
      return held, lock, owner
    end
  end
  return nil
end

-- Claims the files whose locks are KEYS[FIRST_KEY..] (paths ARGV[s.first_path..]) for the
-- session, all or nothing, within the caps on files per session and per key. Returns the
-- reply to give instead ('deny' or 'over_cap'), or nil once all are the session's.
-- s.specs[i], if set, makes KEYS[i] a directory or glob claim (its matcher, claims.lua);
-- s.ttl, if set, is how long new claims last (reserve's minutes). A lock free but
-- covered by another's directory/glob claim, or queued for (blocked_claim), is denied.
local function claim(s, max_session_files, max_key_files)
  local now, files, first_path = s.now, K.files, s.first_path
  local specs, ttl = s.specs or {}, s.ttl or RESERVATION_TTL
  -- A lock is one for every spelling of its path that differs in case (lock_of); the
  -- session's file set and the locks index keep the spelling it was claimed under, so a
  -- lock held already is renewed under that one, never listed twice. The set's
  -- spellings by lock are read once a script, at the first miss: a claim of 100
  -- paths re-cased would otherwise walk the whole set once for each.
  local spellings
  local function spelling_held(path)
    if redis.call('SISMEMBER', files, path) == 1 then return path end
    if not spellings then
      spellings = {}
      for _, held_path in ipairs(redis.call('SMEMBERS', files)) do
        spellings[lock_of(held_path)] = held_path
      end
    end
    local held_path = spellings[lock_of(path)]
    if held_path then return held_path end
    redis.call('SADD', files, path)
    spellings[lock_of(path)] = path
    return path
  end

  local mine, handed, new = {}, {}, 0
  for i = FIRST_KEY, #KEYS do
    local path = ARGV[first_path + i - FIRST_KEY]
    local held, lock, owner = path, KEYS[i], redis.call('GET', KEYS[i])
    local free = not owner
    -- Held for this session as the next in line: its own now, as a new claim.
    handed[i] = owner == SID .. NEXT
    mine[i] = owner == SID
    if not owner or mine[i] or handed[i] or delegated(s, owner) then
      held, lock, owner = symbol_conflict(s, path)
    end
    if owner then
      remember(held, owner)
      local conflict = holder_of(held, lock, owner)
      publish_session_news(s)
      publish_event(s, 'denied', {path = path, holder = conflict[4] or cjson.null})
      return {'deny', s.created, unpack(conflict)}
    end
    if free then
      -- Directory and glob claims cover a file, whole or in part (claims.lua).
      local conflict = blocked_claim(s, (split_claim(path)), specs[i])
      if conflict then
        remember(path, conflict[2])
        publish_session_news(s)
        publish_event(s, 'denied', {path = path, holder = conflict[4] or cjson.null})
        return {'deny', s.created, unpack(conflict)}
      end
    end
    if not mine[i] then new = new + 1 end
  end
  -- The caps: what one session, and one key's sessions together, may hold. They bound
  -- the work of every script that walks a session's files (renewal, end, listings).
  if new > 0 then
    local cap, scope, holding = max_session_files, 'session', redis.call('SCARD', files)
    if holding + new <= cap then
      cap, scope, holding = max_key_files, 'key', live_count(K.key_files, now)
    end
    if holding + new > cap then
      publish_session_news(s)
      return {'over_cap', s.created, scope, cap, holding}
    end
  end
  local kinds = first_path + #KEYS - FIRST_KEY + 1  -- a kind per claim ('' for a file)
  for i = FIRST_KEY, #KEYS do
    local path = ARGV[first_path + i - FIRST_KEY]
    if mine[i] then path = spelling_held(path) end
    if mine[i] and not s.ttl then
      redis.call('PEXPIRE', KEYS[i], ttl, 'GT')
    else
      redis.call('SET', KEYS[i], SID, 'PX', ttl)
    end
    local file, symbol = split_claim(path)
    if symbol then
      redis.call('HSET', symbols_of(file), symbol, ARGV[kinds + i - FIRST_KEY])
      keep_symbol_index(path, ttl)
    end
    redis.call('ZADD', K.locks, 'GT', now + ttl, path)
    redis.call('ZADD', K.key_files, 'GT', now + ttl, path)
    if specs[i] then note_pattern(path, specs[i], ttl) end
    if handed[i] then took_hand_off(path) end
    if not mine[i] then
      redis.call('SADD', files, path)
      remember(path, SID)
      s.card_stale = true
      s.reserved[#s.reserved + 1] = path
    end
  end
  if #KEYS >= FIRST_KEY then
    -- The session's file set and card live as long as its newest lock.
    redis.call('HSET', K.session, 'current_file', (split_claim(ARGV[first_path])))
    extend(files, ttl)
    lapse_with_newest(K.locks)
    lapse_with_newest(K.key_files)
    if s.card_stale then
      s.held = redis.call('SCARD', files)
    else
      extend(K.holder, ttl)
    end
  end
  return nil
end

-- Returns the event's reply, recorded first (begin_event) when the event has an id.
local function noted(s, reply)
  if s.once_ttl > 0 then
    redis.call('SET', K.once, cjson.encode(reply), 'PX', s.once_ttl)
  end
  return reply
end

-- Ends an event that went through: rewrites the holder card if it may name the session
-- wrongly, then publishes what changed ('started' or 'task', and 'reserved' per file
-- newly claimed; not a lock it held already, so renewals publish nothing).
local function settle(s)
  if s.card_stale and (s.held or redis.call('SCARD', K.files)) > 0 then
    local card = redis.call('HMGET', K.session, 'user_name', 'agent_type', 'current_task',
                            'conversation_id', 'key_id', 'parent', 'subagent_type')
    redis.call('HSET', K.holder, 'user_name', card[1] or '', 'agent_type', card[2] or '',
               'current_task', card[3] or '', 'conversation_id', card[4] or s.conversation,
               'key_id', card[5] or '', 'parent', card[6] or '', 'subagent_type', card[7] or '')
    extend(K.holder, s.ttl or RESERVATION_TTL)
    s.who = card
  end
  publish_session_news(s)
  for _, path in ipairs(s.reserved) do
    publish_event(s, 'reserved', {path = path, expires_at_ms = s.now + RESERVATION_TTL})
  end
end
