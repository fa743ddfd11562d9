-- The newest decisions of a workspace.
-- KEYS[1..2], ARGV[1..3]: see admit() in lib.lua
-- KEYS[3] = decisions (list)   ARGV[4] = how many
-- returns {'revoked'} | {'limited', ...} | {'ok', {decision json...}}
local refused = admit('read')
if refused then return refused end
return {'ok', redis.call('LRANGE', KEYS[3], 0, tonumber(ARGV[4]) - 1)}
