-- Who an API key speaks for: its workspace, once the key is admitted (not revoked, in rate).
-- KEYS, ARGV[1..14]: the head of lib.lua; no own ARGV
-- returns {'revoked'} | {'limited', ...} | {'ok', {id, slug, name}}
local refused = admit('read')
if refused then return refused end
return {'ok', redis.call('HMGET', K.workspace, 'id', 'slug', 'name')}
