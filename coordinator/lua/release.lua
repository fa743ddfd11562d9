-- release: give back some or all of the session's claims now; a file others queue for
-- goes to the first in line (claims.lua).
-- KEYS, ARGV[1..14]: the head of lib.lua, with the session's keys
-- own ARGV: the paths to release (none: all the session holds)
-- publishes 'released' for each, 'handed_off' for each file that passes to a waiter
-- returns {'revoked'} | {'limited', ...} | {'not_owner'}
--       | {'not_holder', path}  (a path named that the session does not hold; nothing
--                                 released)
--       | {'ok', {paths released...}}
local refused = admit('end') or refuse_other_key(K.session, K.holder)
if refused then return refused end
local now = now_ms()
local held = holdings(K.files, SID)
local wanted = {unpack(ARGV, FIRST_ARG)}
local chosen = held
if #wanted > 0 then
  local by_folded = {}
  for _, path in ipairs(held) do by_folded[string.lower(path)] = path end
  chosen = {}
  for _, path in ipairs(wanted) do
    local mine = by_folded[string.lower(path)]
    if not mine then return {'not_holder', path} end
    chosen[#chosen + 1] = mine
    by_folded[string.lower(path)] = nil
  end
end
if #chosen == 0 then return {'ok', {}} end
local who = redis.call('HMGET', K.session, 'user_name', 'agent_type')
if not who[1] then who = redis.call('HMGET', K.holder, 'user_name', 'agent_type') end
release_paths(K.files, SID, chosen, now, who)
return {'ok', chosen}
