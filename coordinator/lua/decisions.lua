-- The newest decisions of a workspace.
-- KEYS, ARGV[1..14]: the head of lib.lua   own ARGV: how many
-- returns {'revoked'} | {'limited', ...} | {'ok', {decision json...}}
local count = own_args(1)
local refused = admit('read')
if refused then return refused end
return {'ok', redis.call('LRANGE', K.decisions, 0, tonumber(count) - 1)}
