-- End a session: release every reservation it holds and forget it.
-- KEYS[1..2], ARGV[1..3]: see admit() in lib.lua
-- KEYS[3] = session (hash)              KEYS[4] = files of the session (set)
-- KEYS[5] = holder card (hash)          KEYS[6] = sessions index (zset)
-- KEYS[7] = locks index (zset)          KEYS[8] = files the session was told about (hash)
-- ARGV[4] = session id   ARGV[5] = lock key prefix
-- returns {'revoked'} | {'limited', ...} | {'ok', session was live 0|1, files released}
local refused = admit()
if refused then return refused end
local live = redis.call('DEL', KEYS[3])
redis.call('DEL', KEYS[5], KEYS[8])
redis.call('ZREM', KEYS[6], ARGV[4])
return {'ok', live, release_holdings(KEYS[4], KEYS[7], ARGV[5], ARGV[4])}
