-- One hook event's work, after lib.lua and listings.lua, before claims.lua: open the
-- session, claim files (all or nothing, within the caps), settle it (renewals, the
-- holder card, the live events), and the record that keeps an event's copies from
-- counting twice.

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
