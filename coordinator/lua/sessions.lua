-- One page of the live sessions of a workspace, each with the files it holds.
-- KEYS[1..2], ARGV[1..3]: see admit() in lib.lua
-- KEYS[3] = sessions index (zset)
-- ARGV[4..6] = key prefixes of sessions, files and locks
-- ARGV[7] = most sessions in the page   ARGV[8] = files after which the page ends
-- ARGV[9..10] = the cursor: score and id of the last session of the page before ('' '': none)
-- ARGV[11..] = the session fields to read
-- returns {'revoked'} | {'limited', ...}
--       | {'ok', {{{field values...}, {paths...}}...}, live total, {score, id} | nil}
--         the rows newest first; the last element is the cursor of the next page
local refused = admit('read')
if refused then return refused end
local now = now_ms()
local after_score = ARGV[9] ~= '' and ARGV[9]
local rows, cursor = live_sessions(KEYS[3], ARGV[4], ARGV[5], ARGV[6], {unpack(ARGV, 11)}, now,
                                   tonumber(ARGV[7]), tonumber(ARGV[8]), after_score, ARGV[10])
return {'ok', rows, redis.call('ZCOUNT', KEYS[3], '(' .. now, '+inf'), cursor}
