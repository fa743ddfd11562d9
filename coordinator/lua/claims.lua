-- Directory and glob claims, and the first-come queues of requested files: the functions
-- lib.lua declares and it and event.lua call (blocked_claim, note_pattern, pass_on_freed,
-- leave_queues, renew_claims, took_hand_off, take_notes), and what the request scripts share.
-- transport.py puts this file after lib.lua, listings.lua and event.lua, before every script.
--
-- A directory or glob claim is an ordinary lock (lock_of(pattern), value = sid) in its
-- holder's files, so it renews, lists and releases as a file does; K.patterns maps its
-- folded form to "spelled<TAB>lua patterns (one a line)<TAB>literal head<TAB>literal tail"
-- (globs.py makes the matcher). Few exist (COORDINATOR_MAX_PATTERNS), so a new file claim
-- reads them all. K.requests maps each requested file (folded) to its queue, JSON
-- {path, waiters = {{sid, user, agent, note, at_ms}...}} first come first; when the file
-- frees, its lock becomes '<first waiter's sid> next' for the hand-off grace.

local MAX_NOTES = 20
-- A queue lives as long as a waiter's session or a holder's reservation could, renewed
-- while anyone in the workspace is active; waiters whose session went are skipped.
local REQUEST_TTL = math.max(SESSION_TTL, RESERVATION_TTL)

-- "lua1\nlua2<TAB>head<TAB>tail" → {pats, head, tail}
local function matcher(spec)
  local pats, head, tail = string.match(spec, '^(.-)\t(.-)\t(.*)$')
  local list = {}
  for pat in string.gmatch(pats or '', '[^\n]+') do list[#list + 1] = pat end
  return {pats = list, head = head or '', tail = tail or ''}
end

local function matches(m, folded_path)
  for _, pat in ipairs(m.pats) do
    if string.find(folded_path, pat) then return true end
  end
  return false
end

local function starts(text, head) return string.sub(text, 1, #head) == head end
local function ends(text, tail) return tail == '' or string.sub(text, -#tail) == tail end

-- Whether two directory/glob claims may cover one file: their literal heads are one the
-- other's start and their literal tails one the other's end. Conservative for two globs
-- (src/*.ts and src/**/x.ts overlap), exact for directories.
local function overlap(a, b)
  return (starts(a.head, b.head) or starts(b.head, a.head))
     and (ends(a.tail, b.tail) or ends(b.tail, a.tail))
end

-- The live directory/glob claims: {{folded, spelled, m, owner}...}; forgets dead ones.
local live_cache
local function live_patterns()
  if live_cache then return live_cache end
  live_cache = {}
  local all = redis.call('HGETALL', K.patterns)
  for i = 1, #all, 2 do
    local folded, value = all[i], all[i + 1]
    local owner = redis.call('GET', P.lock .. folded)
    if owner then
      local spelled, spec = string.match(value, '^(.-)\t(.*)$')
      live_cache[#live_cache + 1] = {folded = folded, spelled = spelled, m = matcher(spec),
                                     owner = owner}
    else
      redis.call('HDEL', K.patterns, folded)
    end
  end
  return live_cache
end

-- A directory/glob claim covering the file `folded` that the session `s` may not take
-- (s nil: anyone's), or nil.
local function covering(folded, s)
  for _, c in ipairs(live_patterns()) do
    if matches(c.m, folded) and not (s and (c.owner == SID or delegated(s, c.owner))) then
      return c
    end
  end
  return nil
end

local function push_note(sid, note)
  local key = P.notes .. sid
  redis.call('RPUSH', key, cjson.encode(note))
  redis.call('LTRIM', key, -MAX_NOTES, -1)
  redis.call('PEXPIRE', key, RESERVATION_TTL)
end

take_notes = function()
  local notes = redis.call('LRANGE', K.notes, 0, -1)
  if #notes > 0 then redis.call('DEL', K.notes) end
  return notes
end

local function read_request(folded)
  local encoded = redis.call('HGET', K.requests, folded)
  if not encoded then return nil end
  local entry = cjson.decode(encoded)
  if type(entry.waiters) ~= 'table' then entry.waiters = {} end
  return entry
end

-- Stores a queue, or forgets it once nobody waits and nothing is held for anyone.
local function write_request(folded, entry)
  if #entry.waiters == 0 then
    local owner = redis.call('GET', P.lock .. folded)
    if not (owner and string.find(owner, NEXT, 1, true)) then
      redis.call('HDEL', K.requests, folded)
      return
    end
  end
  redis.call('HSET', K.requests, folded, cjson.encode(entry))
  extend(K.requests, REQUEST_TTL)
end

-- The file `folded` is free: it goes to the first waiter whose session is live (the
-- others, gone, leave the queue). Held for it for the grace, it is told on its next
-- event, and 'handed_off' is published. Returns that waiter's sid, or nil (nobody waits).
local function hand_off(folded, entry, now)
  while #entry.waiters > 0 do
    local first = table.remove(entry.waiters, 1)
    if redis.call('EXISTS', P.session .. first.sid) == 1 then
      redis.call('SET', P.lock .. folded, first.sid .. NEXT, 'PX', HAND_OFF_GRACE)
      write_request(folded, entry)
      push_note(first.sid, {kind = 'free', path = entry.path, until_ms = now + HAND_OFF_GRACE})
      publish('handed_off', now, first.sid, {first.user, first.agent},
              {path = entry.path, to = first.user})
      return first.sid
    end
  end
  write_request(folded, entry)
  return nil
end

-- Why the free lock of `path` may not be claimed by this session, as holder_of's row,
-- or nil. `spec`: the claim is a directory or glob (its matcher): it may overlap no
-- other's directory/glob claim, file, or file held for the next in line. A file: no
-- other's directory/glob claim may cover it, and if others queue for it (its holder's
-- lock lapsed, or the grace of the one it was held for ran out), it goes to the first
-- in line — this session, or another, which it is then held for.
blocked_claim = function(s, path, spec)
  local folded, now = string.lower(path), s.now
  if spec then
    local mine = matcher(spec)
    local claimed = {}
    for _, c in ipairs(live_patterns()) do
      claimed[c.folded] = true
      if c.owner ~= SID and not delegated(s, c.owner) and c.folded ~= folded
         and overlap(mine, c.m) then
        return holder_of(path, P.lock .. c.folded, c.owner, c.spelled)
      end
    end
    for _, held in ipairs(redis.call('ZRANGE', K.locks, '(' .. now, '+inf', 'BYSCORE')) do
      local f = string.lower((split_claim(held)))  -- a symbol's claim: its file's path
      if not claimed[f] and matches(mine, f) then
        local owner = redis.call('GET', lock_of(held))
        if owner and owner ~= SID and owner ~= SID .. NEXT and not delegated(s, owner) then
          local file, symbol = split_claim(held)
          return holder_of(path, lock_of(held), owner, symbol and file .. '#' .. symbol or held)
        end
      end
    end
    local queued = redis.call('HGETALL', K.requests)
    for i = 1, #queued, 2 do
      local owner = redis.call('GET', P.lock .. queued[i])
      if owner and owner ~= SID .. NEXT and string.find(owner, NEXT, 1, true)
         and matches(mine, queued[i]) then
        return holder_of(path, P.lock .. queued[i], owner, cjson.decode(queued[i + 1]).path)
      end
    end
    return nil
  end
  local c = covering(folded, s)
  if c then return holder_of(path, P.lock .. c.folded, c.owner, c.spelled) end
  local entry = read_request(folded)
  if not entry then return nil end
  -- This session waiting first in line takes it; else the first live waiter gets it.
  for i, waiter in ipairs(entry.waiters) do
    if waiter.sid == SID then
      local ahead = false
      for j = 1, i - 1 do
        if redis.call('EXISTS', P.session .. entry.waiters[j].sid) == 1 then ahead = true end
      end
      if not ahead then
        for _ = 1, i do table.remove(entry.waiters, 1) end
        write_request(folded, entry)
        return nil
      end
    end
  end
  local next_sid = hand_off(folded, entry, now)
  if not next_sid then return nil end
  return holder_of(path, P.lock .. folded, next_sid .. NEXT)
end

note_pattern = function(path, spec, ttl)
  redis.call('HSET', K.patterns, string.lower(path), path .. '\t' .. spec)
  extend(K.patterns, ttl)
  live_cache = nil
end

took_hand_off = function(path)
  local folded = string.lower(path)
  local entry = read_request(folded)
  if entry then write_request(folded, entry) end
end

-- At every renewal of any session's reservations (touch() in event.lua).
renew_claims = function()
  extend(K.patterns, RESERVATION_TTL)
  extend(K.requests, REQUEST_TTL)
end

-- Files just released (`paths`, as spelled): directory/glob claims among them are
-- forgotten, and each queued file now free (neither locked nor covered by a claim) goes
-- to its first in line: the files released, those under a directory or glob released,
-- and any whose holder's lock lapsed meanwhile.
pass_on_freed = function(paths, now)
  local folded = {}
  for i, path in ipairs(paths) do folded[i] = string.lower(path) end
  batched('HDEL', {K.patterns}, folded)
  live_cache = nil
  if redis.call('EXISTS', K.requests) == 0 then return end
  local queued = redis.call('HGETALL', K.requests)
  for i = 1, #queued, 2 do
    local file = queued[i]
    if redis.call('EXISTS', P.lock .. file) == 0 and not covering(file, nil) then
      local entry = cjson.decode(queued[i + 1])
      if type(entry.waiters) ~= 'table' then entry.waiters = {} end
      hand_off(file, entry, now)
    end
  end
end

-- The session `sid` leaves every queue; a file held for it goes to the next in line.
leave_queues = function(sid, now)
  if redis.call('EXISTS', K.requests) == 0 then return end
  local queued = redis.call('HGETALL', K.requests)
  for i = 1, #queued, 2 do
    local file, entry = queued[i], cjson.decode(queued[i + 1])
    if type(entry.waiters) ~= 'table' then entry.waiters = {} end
    local kept = {}
    for _, waiter in ipairs(entry.waiters) do
      if waiter.sid ~= sid then kept[#kept + 1] = waiter end
    end
    entry.waiters = kept
    if redis.call('GET', P.lock .. file) == sid .. NEXT then
      redis.call('DEL', P.lock .. file)
      hand_off(file, entry, now)
    else
      write_request(file, entry)
    end
  end
end
