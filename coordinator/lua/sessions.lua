-- The live sessions of a workspace, each with the files it holds.
-- KEYS[1..2], ARGV[1..3]: see admit() in lib.lua
-- KEYS[3] = sessions index (zset)
-- ARGV[4..6] = key prefixes of sessions, files and locks
-- ARGV[7..] = the session fields to read
-- returns {'revoked'} | {'limited', ...} | {'ok', {{field values...}, {paths...}}...}
--         newest first
local refused = admit('read')
if refused then return refused end
local fields = {unpack(ARGV, 7)}
return {'ok', live_sessions(KEYS[3], ARGV[4], ARGV[5], ARGV[6], fields, now_ms(), -1)}
