-- Record a decision at the head of the workspace's capped history.
-- KEYS[1] = workspace api keys (hash)   KEYS[2] = decisions (list)
-- ARGV[1] = api key digest   ARGV[2] = text   ARGV[3] = user name
-- ARGV[4] = session id ('' for none)   ARGV[5] = how many to keep
-- returns {'revoked'} | {'ok', the decision as JSON}
if key_revoked(KEYS[1], ARGV[1]) then return {'revoked'} end
local decision = {text = ARGV[2], user_name = ARGV[3], created_ms = now_ms()}
if ARGV[4] ~= '' then decision.session_id = ARGV[4] end
local encoded = cjson.encode(decision)
redis.call('LPUSH', KEYS[2], encoded)
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
return {'ok', encoded}
