-- One page of the live sessions of a workspace, each with the files it holds.
-- KEYS, ARGV[1..14]: the head of lib.lua
-- own ARGV: most sessions in the page, files after which the page ends, the cursor:
--           score and id of the last session of the page before ('' '': none), then the
--           session fields to read
-- returns {'revoked'} | {'limited', ...}
--       | {'ok', {{{field values...}, {paths...}}...}, live total, {score, id} | nil}
--         the rows newest first; the last element is the cursor of the next page
local limit, file_budget, after_score, after_member = own_args(4)
local refused = admit('read')
if refused then return refused end
local now = now_ms()
local rows, cursor = live_sessions({unpack(ARGV, FIRST_ARG + 4)}, now, tonumber(limit),
                                   tonumber(file_budget), after_score ~= '' and after_score,
                                   after_member)
return {'ok', rows, live_count(K.sessions, now), cursor}
