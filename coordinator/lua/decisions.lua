-- The newest decisions of a workspace.
-- KEYS[1] = workspace api keys (hash)   KEYS[2] = decisions (list)
-- ARGV[1] = api key digest   ARGV[2] = how many
-- returns {'revoked'} | {'ok', {decision json...}}
if key_revoked(KEYS[1], ARGV[1]) then return {'revoked'} end
return {'ok', redis.call('LRANGE', KEYS[2], 0, tonumber(ARGV[2]) - 1)}
