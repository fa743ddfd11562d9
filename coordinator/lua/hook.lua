-- One hook event of one conversation: touch (or create) its session, keep its
-- reservations alive, and claim files all-or-nothing. Check and claim are one step.
-- KEYS[1..2], ARGV[1..3]: see admit() in lib.lua
-- KEYS[3] = session (hash)                KEYS[4] = files of the session (set)
-- KEYS[5] = holder card (hash)            KEYS[6] = sessions index (zset)
-- KEYS[7] = locks index (zset)            KEYS[8] = decisions (list)
-- KEYS[9] = files the session was told about (hash)
-- KEYS[10] = the workspace's events channel
-- KEYS[11] = files the sessions of the request's key hold (zset, scored by expiry)
-- KEYS[12] = the project roots its start named (hash; lives as long as the session could)
-- KEYS[13..] = locks of the files to claim
-- ARGV[4] = session id   ARGV[5] = conversation id
-- ARGV[6] = session TTL ms   ARGV[7] = reservation TTL ms
-- ARGV[8..10] = key prefixes of locks, holder cards and sessions
-- ARGV[11] = mode: 'touch' | 'claim' | 'start' (touch and brief) | 'prompt' (touch and tell
--           what changed since the session last heard) | 'heartbeat' (live sessions only)
-- ARGV[12] = lines per briefing section   ARGV[13] = decisions in the briefing
-- ARGV[14] = most files a session may hold   ARGV[15] = most files a key's sessions may hold
-- ARGV[16] = n, then n field/value pairs to set on the session,
--            then one path per lock key of KEYS[13..]
-- publishes 'started' (a new session), 'task' (its task changed), 'reserved' (each file
-- newly claimed; not a lock it held already, so renewals publish nothing)
-- returns {'revoked'} | {'limited', ...} | {'full'} | {'not_owner'} (the session is another
--       key's) | {'missing'} | {'ok', created 0|1}
--       | {'deny', created, path, holder sid, pttl, holder user_name, agent_type, current_task}
--       | {'over_cap', created, 'session' | 'key', the cap, files held}  (a claim past a cap)
--       | {'brief', created, now, others, {{user_name, agent_type, current_task}...},
--          locked, {{path, user_name}...}, {decision json...}}             (mode 'start')
--       | {'news', created, {{path, holder sid, pttl, user_name, agent_type, current_task}...},
--          {decision json...}}                                             (mode 'prompt')
local session, files, holder = KEYS[3], KEYS[4], KEYS[5]
local sessions_index, locks_index, decisions, told = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local events, key_files, roots = KEYS[10], KEYS[11], KEYS[12]
local FIRST_LOCK = 13
local sid, conversation = ARGV[4], ARGV[5]
local session_ttl, reservation_ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
local lock_prefix, holder_prefix, session_prefix = ARGV[8], ARGV[9], ARGV[10]
local mode, lines, recent = ARGV[11], tonumber(ARGV[12]), tonumber(ARGV[13])
local max_session_files, max_key_files = tonumber(ARGV[14]), tonumber(ARGV[15])
local nfields = tonumber(ARGV[16])
local first_field, first_path = 17, 17 + 2 * nfields
local MAX_TOLD = 200

local refused = admit() or refuse_other_key(session, holder)
if refused then return refused end
local state = redis.call('HMGET', session, 'id', 'renewed_ms', 'current_task')
local created = state[1] and 0 or 1
if created == 1 and mode == 'heartbeat' then return {'missing'} end

local now = now_ms()
if created == 1 then
  redis.call('HSET', session, 'id', sid, 'conversation_id', conversation, 'started_ms', now,
             'heard_ms', now)
end
redis.call('HSET', session, 'last_seen_ms', now, unpack(ARGV, first_field, first_path - 1))
redis.call('PEXPIRE', session, session_ttl)
redis.call('ZADD', sessions_index, now + session_ttl, sid)
-- The roots outlive the session and its locks by a little, never by more (no-op if none).
redis.call('PEXPIRE', roots, math.max(session_ttl, reservation_ttl))
lapse_with_newest(sessions_index)

-- Events name the session's user and agent: read once, only to publish something
-- (a claim reads them with the holder card anyway), and published once all is written.
local who
local function publish_event(kind, fields)
  if not who then who = redis.call('HMGET', session, 'user_name', 'agent_type') end
  publish(events, kind, now, sid, who, fields)
end
local task, task_sent = state[3], false
for i = first_field, first_path - 1, 2 do
  if ARGV[i] == 'current_task' then task, task_sent = ARGV[i + 1], true end
end
local function publish_session_news()
  if created == 1 then
    publish_event('started', {task = task or cjson.null})
  elseif task ~= state[3] then
    publish_event('task', {task = task})
  end
end
local reserved = {}

-- Renewing every held lock costs two commands per file, so a busy session renews
-- them once a quarter of their TTL (and at every start, which reports them): a lock
-- then always has at least three quarters of its TTL left after its holder's last event.
-- The cap on files per session bounds it. Trimming a batch of what expired from the
-- indexes rides along; their readers skip it by score.
local held
local renew = mode == 'start' or now - (tonumber(state[2]) or 0) >= reservation_ttl / 4
if renew then
  prune(sessions_index, now)
  prune(locks_index, now)
  prune(key_files, now)
  held = refresh_holdings(files, holder, locks_index, key_files, lock_prefix, sid, now,
                          reservation_ttl)
  redis.call('PEXPIRE', told, reservation_ttl)
  redis.call('HSET', session, 'renewed_ms', now)
end

local function remember(path, owner)
  local known = redis.call('HLEN', told)
  if known < MAX_TOLD or redis.call('HEXISTS', told, path) == 1 then
    redis.call('HSET', told, path, owner)
    if known == 0 then redis.call('PEXPIRE', told, reservation_ttl) end
  end
end

local function holder_of(path, lock, owner)
  local card = redis.call('HMGET', holder_prefix .. owner, 'user_name', 'agent_type', 'current_task')
  return {path, owner, redis.call('PTTL', lock), card[1], card[2], card[3]}
end

-- A lock is one for every spelling of its path that differs in case (lock_of); the
-- session's file set and the locks index keep the spelling it was claimed under, so a
-- lock held already is renewed under that one, never listed twice.
-- The set's spellings by folded path are read once a script, at the first miss: a claim
-- of 100 paths re-cased would otherwise walk the whole set once for each.
local spellings
local function spelling_held(path)
  if redis.call('SISMEMBER', files, path) == 1 then return path end
  if not spellings then
    spellings = {}
    for _, held_path in ipairs(redis.call('SMEMBERS', files)) do
      spellings[string.lower(held_path)] = held_path
    end
  end
  local held_path = spellings[string.lower(path)]
  if held_path then return held_path end
  redis.call('SADD', files, path)
  spellings[string.lower(path)] = path
  return path
end

-- The holder card names whoever holds a file: rewritten when it may have changed.
local card_stale = renew or task_sent

if mode == 'claim' then
  local mine, new = {}, 0
  for i = FIRST_LOCK, #KEYS do
    local owner = redis.call('GET', KEYS[i])
    if owner and owner ~= sid then
      local path = ARGV[first_path + i - FIRST_LOCK]
      remember(path, owner)
      local conflict = holder_of(path, KEYS[i], owner)
      publish_session_news()
      return {'deny', created, unpack(conflict)}
    end
    mine[i] = owner == sid
    if not mine[i] then new = new + 1 end
  end
  -- The caps: what one session, and one key's sessions together, may hold. They bound
  -- the work of every script that walks a session's files (renewal, end, listings).
  if new > 0 then
    local cap, scope, holding = max_session_files, 'session', redis.call('SCARD', files)
    if holding + new <= cap then
      cap, scope = max_key_files, 'key'
      holding = redis.call('ZCOUNT', key_files, '(' .. now, '+inf')
    end
    if holding + new > cap then
      publish_session_news()
      return {'over_cap', created, scope, cap, holding}
    end
  end
  for i = FIRST_LOCK, #KEYS do
    local path = ARGV[first_path + i - FIRST_LOCK]
    if mine[i] then path = spelling_held(path) end
    redis.call('SET', KEYS[i], sid, 'PX', reservation_ttl)
    redis.call('ZADD', locks_index, now + reservation_ttl, path)
    redis.call('ZADD', key_files, now + reservation_ttl, path)
    if not mine[i] then
      redis.call('SADD', files, path)
      remember(path, sid)
      card_stale = true
      reserved[#reserved + 1] = path
    end
  end
  if #KEYS >= FIRST_LOCK then
    -- The session's file set and card live as long as its newest lock.
    redis.call('HSET', session, 'current_file', ARGV[first_path])
    redis.call('PEXPIRE', files, reservation_ttl)
    lapse_with_newest(locks_index)
    lapse_with_newest(key_files)
    if card_stale then
      held = redis.call('SCARD', files)
    else
      redis.call('PEXPIRE', holder, reservation_ttl)
    end
  end
end

if card_stale and (held or redis.call('SCARD', files)) > 0 then
  local card = redis.call('HMGET', session, 'user_name', 'agent_type', 'current_task',
                         'conversation_id', 'key_id')
  redis.call('HSET', holder, 'user_name', card[1] or '', 'agent_type', card[2] or '',
             'current_task', card[3] or '', 'conversation_id', card[4] or conversation,
             'key_id', card[5] or '')
  redis.call('PEXPIRE', holder, reservation_ttl)
  who = card
end

publish_session_news()
for _, path in ipairs(reserved) do
  publish_event('reserved', {path = path, expires_at_ms = now + reservation_ttl})
end

if mode == 'prompt' then
  -- What changed for this agent since it last heard: files it touched that someone
  -- else reserved since, and decisions made since by anyone else.
  local heard = tonumber(redis.call('HGET', session, 'heard_ms')) or now
  local taken = {}
  local seen = redis.call('HGETALL', told)
  for i = 1, #seen, 2 do
    local path, last_owner = seen[i], seen[i + 1]
    local lock = lock_of(lock_prefix, path)
    local owner = redis.call('GET', lock)
    if owner and owner ~= sid and owner ~= last_owner and #taken < lines then
      taken[#taken + 1] = holder_of(path, lock, owner)
      redis.call('HSET', told, path, owner)
    end
  end
  local decided = {}
  for _, encoded in ipairs(redis.call('LRANGE', decisions, 0, recent - 1)) do
    local decision = cjson.decode(encoded)
    if decision.created_ms > heard and decision.session_id ~= sid then
      decided[#decided + 1] = encoded
    end
  end
  redis.call('HSET', session, 'heard_ms', now)
  return {'news', created, taken, decided}
end

if mode ~= 'start' then return {'ok', created} end

-- The briefing: the newest few of everything else, plus how many there are in all.
redis.call('HSET', session, 'heard_ms', now)
local agents = {}
for _, other in ipairs(redis.call('ZRANGE', sessions_index, '+inf', '(' .. now, 'BYSCORE', 'REV', 'LIMIT', 0, lines + 1)) do
  if other ~= sid and #agents < lines then
    local card = redis.call('HMGET', session_prefix .. other, 'user_name', 'agent_type', 'current_task')
    if card[1] then agents[#agents + 1] = card end
  end
end
local others = redis.call('ZCOUNT', sessions_index, '(' .. now, '+inf') - 1

local locked = {}
for _, path in ipairs(redis.call('ZRANGE', locks_index, '+inf', '(' .. now, 'BYSCORE', 'REV', 'LIMIT', 0, lines + held)) do
  local owner = redis.call('GET', lock_of(lock_prefix, path))
  if owner and owner ~= sid and #locked < lines then
    locked[#locked + 1] = {path, redis.call('HGET', holder_prefix .. owner, 'user_name')}
  end
end
local locked_total = redis.call('ZCOUNT', locks_index, '(' .. now, '+inf') - held

return {'brief', created, now, others, agents, locked_total, locked,
        redis.call('LRANGE', decisions, 0, recent - 1)}
