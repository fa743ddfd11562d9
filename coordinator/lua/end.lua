-- End a session: release every reservation it holds and forget it.
-- KEYS[1] = workspace api keys (hash)   KEYS[2] = session (hash)
-- KEYS[3] = files of the session (set)  KEYS[4] = holder card (hash)
-- KEYS[5] = sessions index (zset)       KEYS[6] = locks index (zset)
-- KEYS[7] = files the session was told about (hash)
-- ARGV[1] = api key digest   ARGV[2] = session id   ARGV[3] = lock key prefix
-- returns {'revoked'} | {'ok', session was live 0|1, files released}
if key_revoked(KEYS[1], ARGV[1]) then return {'revoked'} end
local live = redis.call('DEL', KEYS[2])
redis.call('DEL', KEYS[4], KEYS[7])
redis.call('ZREM', KEYS[5], ARGV[2])
return {'ok', live, release_holdings(KEYS[3], KEYS[6], ARGV[3], ARGV[2])}
