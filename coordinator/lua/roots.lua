-- Remember the project roots a conversation's bridge found at its start (the git root),
-- for its events that name none: Claude Code's http hooks post straight to the service.
-- Only the key that owns the conversation may set them.
-- KEYS[1..2], ARGV[1..3]: see admit() in lib.lua
-- KEYS[3] = session (hash)   KEYS[4] = holder card (hash)   KEYS[5] = roots (hash)
-- ARGV[4] = the roots, as a JSON list   ARGV[5] = how long to keep them, ms (every
-- event of the session keeps them that long again: hook.lua)
-- returns {'revoked'} | {'limited', ...} | {'not_owner'} | {'ok'}
local refused = admit() or refuse_other_key(KEYS[3], KEYS[4], KEYS[5])
if refused then return refused end
redis.call('HSET', KEYS[5], 'key_id', string.sub(ARGV[1], 1, 16), 'roots', ARGV[4])
redis.call('PEXPIRE', KEYS[5], ARGV[5])
return {'ok'}
