-- A subagent stops: every file it holds passes to its parent session (the locks name the
-- parent, with a whole reservation TTL; the parent's file set and holder card take them),
-- so its siblings and its parent may edit them, while other sessions stay denied. Then
-- the subagent is forgotten. Idempotent: a subagent stopped before holds nothing.
-- KEYS, ARGV[1..14]: the head of lib.lua, with the subagent's session keys
-- own ARGV: the parent session's id
-- publishes 'reserved' for each file passed (as the parent), then 'ended' (reason
-- 'subagent_stop') if the subagent was live
-- returns {'revoked'} | {'limited', ...} | {'full'} | {'not_owner'}
--       | {'ok', the subagent was live 0|1, files passed}
local parent = own_args(1)
local refused = admit() or refuse_other_key(K.session, K.holder)
if refused then return refused end
local now = now_ms()
local who = redis.call('HMGET', K.session, 'user_name', 'agent_type')
if not who[1] then who = redis.call('HMGET', K.holder, 'user_name', 'agent_type') end
local held = holdings(K.files, SID)
local files, card = P.files .. parent, P.holder .. parent
if #held > 0 then
  for _, path in ipairs(held) do
    redis.call('SET', lock_of(path), parent, 'PX', RESERVATION_TTL)
    keep_symbol_index(path, RESERVATION_TTL)
  end
  batched('SADD', {files}, held)
  local expiry = scored(held, now + RESERVATION_TTL)
  batched('ZADD', {K.locks}, expiry)
  batched('ZADD', {K.key_files}, expiry)
  lapse_with_newest(K.locks)
  lapse_with_newest(K.key_files)
  redis.call('PEXPIRE', files, RESERVATION_TTL)
  if redis.call('EXISTS', card) == 0 then
    -- The parent held nothing yet: its card is made from its session, or from the
    -- subagent's own card when the parent's session went idle.
    local from = redis.call('HMGET', P.session .. parent, 'user_name', 'agent_type',
                            'current_task', 'conversation_id', 'key_id')
    if not from[1] then
      from = redis.call('HMGET', K.holder, 'user_name', 'agent_type', 'current_task',
                        'conversation_id', 'key_id')
      from[3] = ''
    end
    redis.call('HSET', card, 'user_name', from[1] or '', 'agent_type', from[2] or '',
               'current_task', from[3] or '', 'conversation_id', from[4] or '',
               'key_id', from[5] or CALLER, 'parent', '', 'subagent_type', '')
  end
  redis.call('PEXPIRE', card, RESERVATION_TTL)
end
local live = redis.call('DEL', K.session)
redis.call('DEL', K.holder, K.files, K.told)
redis.call('ZREM', K.sessions, SID)
redis.call('SREM', P.subagents .. parent, SID)
if #held > 0 then
  local heir = redis.call('HMGET', card, 'user_name', 'agent_type')
  for _, path in ipairs(held) do
    publish('reserved', now, parent, heir, {path = path, expires_at_ms = now + RESERVATION_TTL})
  end
end
if live == 1 then
  publish('ended', now, SID, who, {reason = 'subagent_stop', parent = parent, passed = #held})
end
return {'ok', live, #held}
