-- Record a decision at the head of the workspace's capped history.
-- KEYS, ARGV[1..14]: the head of lib.lua
-- own ARGV: text, user name, session id ('' for none), how many to keep
-- publishes 'decision' (not for a retry)
-- returns {'revoked'} | {'limited', ...} | {'full'} | {'ok', the decision as JSON}
-- Idempotent: the newest decision, if it has the same text, person and session and is
-- under a minute old, is this one retried (its client timed out on the first answer).
local RETRY_MS = 60000
local text, user_name, session_id, keep = own_args(4)
local refused = admit()
if refused then return refused end
local now = now_ms()
local newest = redis.call('LINDEX', K.decisions, 0)
if newest then
  local before = cjson.decode(newest)
  if before.text == text and before.user_name == user_name
     and (before.session_id or '') == session_id and now - before.created_ms < RETRY_MS then
    return {'ok', newest}
  end
end
local decision = {text = text, user_name = user_name, created_ms = now}
if session_id ~= '' then decision.session_id = session_id end
local encoded = cjson.encode(decision)
redis.call('LPUSH', K.decisions, encoded)
redis.call('LTRIM', K.decisions, 0, tonumber(keep) - 1)
publish('decision', now, session_id, {user_name}, {text = text})
return {'ok', encoded}
