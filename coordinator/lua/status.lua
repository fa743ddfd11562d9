-- A snapshot of one workspace for `coordinator status`, a trusted local admin reader:
-- no API key, so no admit(). One script, so sessions, reservations and decisions are
-- read at one instant, against Redis's clock.
-- KEYS[1] = sessions index (zset)   KEYS[2] = locks index (zset)   KEYS[3] = decisions (list)
-- ARGV[1..4] = key prefixes of sessions, files, locks and holder cards
-- ARGV[5] = rows per section   ARGV[6] = decisions to read
-- ARGV[7] = files after which the sessions section ends   ARGV[8..] = session fields
-- returns {now, sessions total, {{field values...}, {paths...}}...,
--          reservations total, {{path, sid, pttl, user_name, current_task,
--                                conversation_id, agent_type}...}, {decision json...}}
local session_prefix, files_prefix, lock_prefix, holder_prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local rows, recent = tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_ms()
-- A page of each, as the listings read them (whose work is bounded), and their totals.
local sessions = live_sessions(KEYS[1], session_prefix, files_prefix, lock_prefix,
                               {unpack(ARGV, 8)}, now, rows, tonumber(ARGV[7]), false, '')
local reservations = live_reservations(KEYS[2], lock_prefix, holder_prefix, now, rows, false, '')
local function live(index) return redis.call('ZCOUNT', index, '(' .. now, '+inf') end
return {now, live(KEYS[1]), sessions, live(KEYS[2]), reservations,
        redis.call('LRANGE', KEYS[3], 0, recent - 1)}
