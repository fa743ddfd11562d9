-- A snapshot of one workspace for `coordinator status`, a trusted local admin reader:
-- no API key, so no admit(). One script, so sessions, reservations and decisions are
-- read at one instant, against Redis's clock.
-- KEYS, ARGV[1..14]: the head of lib.lua (no key: its digest is '')
-- own ARGV: rows per section, decisions to read, files after which the sessions
--           section ends, then the session fields
-- returns {'ok', now, sessions total, {{field values...}, {paths...}}...,
--          reservations total, {{path, sid, pttl, user_name, current_task,
--                                conversation_id, agent_type, parent, subagent_type}...},
--          {decision json...}}
local rows, recent, file_budget = own_args(3)
rows = tonumber(rows)
local now = now_ms()
-- A page of each, as the listings read them (whose work is bounded), and their totals.
local sessions = live_sessions({unpack(ARGV, FIRST_ARG + 3)}, now, rows, tonumber(file_budget),
                               false, '')
local reservations = live_reservations(now, rows, false, '')
return {'ok', now, live_count(K.sessions, now), sessions, live_count(K.locks, now),
        reservations, redis.call('LRANGE', K.decisions, 0, tonumber(recent) - 1)}
