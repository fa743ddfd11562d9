-- Who an API key speaks for: its workspace, once the key is admitted (not revoked, in rate).
-- KEYS[1..2], ARGV[1..3]: see admit() in lib.lua
-- KEYS[3] = the workspace (hash)
-- returns {'revoked'} | {'limited', ...} | {'ok', {id, slug, name}}
local refused = admit('read')
if refused then return refused end
return {'ok', redis.call('HMGET', KEYS[3], 'id', 'slug', 'name')}
