-- The listings' walks of the workspace's indexes (sessions, reservations, status, revoke),
-- after lib.lua: pages of live members, longest-lived or newest first, with cursors.

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
