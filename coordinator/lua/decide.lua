-- Record a decision at the head of the workspace's capped history.
-- KEYS[1..2], ARGV[1..3]: see admit() in lib.lua
-- KEYS[3] = decisions (list)   KEYS[4] = the workspace's events channel
-- ARGV[4] = text   ARGV[5] = user name   ARGV[6] = session id ('' for none)
-- ARGV[7] = how many to keep
-- publishes 'decision' (not for a retry)
-- returns {'revoked'} | {'limited', ...} | {'full'} | {'ok', the decision as JSON}
-- Idempotent: the newest decision, if it has the same text, person and session and is
-- under a minute old, is this one retried (its client timed out on the first answer).
local RETRY_MS = 60000
local refused = admit()
if refused then return refused end
local now = now_ms()
local newest = redis.call('LINDEX', KEYS[3], 0)
if newest then
  local before = cjson.decode(newest)
  if before.text == ARGV[4] and before.user_name == ARGV[5]
     and (before.session_id or '') == ARGV[6] and now - before.created_ms < RETRY_MS then
    return {'ok', newest}
  end
end
local decision = {text = ARGV[4], user_name = ARGV[5], created_ms = now}
if ARGV[6] ~= '' then decision.session_id = ARGV[6] end
local encoded = cjson.encode(decision)
redis.call('LPUSH', KEYS[3], encoded)
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[7]) - 1)
publish(KEYS[4], 'decision', now, ARGV[6], {ARGV[5]}, {text = ARGV[4]})
return {'ok', encoded}
