-- Remember the project roots a conversation's bridge found at its start (the git root),
-- for its events that name none: Claude Code's http hooks post straight to the service.
-- Only the key that owns the conversation may set them; they live as long as the session
-- or its reservations could (every event of the session keeps them that long again).
-- KEYS, ARGV[1..14]: the head of lib.lua, with the session's keys
-- own ARGV: the roots, as a JSON list
-- returns {'revoked'} | {'limited', ...} | {'not_owner'} | {'ok'}
local roots = own_args(1)
local refused = admit() or refuse_other_key(K.session, K.holder, K.roots)
if refused then return refused end
redis.call('HSET', K.roots, 'key_id', CALLER, 'roots', roots)
redis.call('PEXPIRE', K.roots, math.max(SESSION_TTL, RESERVATION_TTL))
return {'ok'}
