-- reserve: claim files, directories and globs up front, all or nothing. A directory or
-- glob is one lock (claims.lua) that covers the files under or matching it, both ways:
-- it is refused while another holds such a file, and a file it covers is refused to
-- everyone else (touch.lua's claims too).
-- KEYS, ARGV[1..14]: the head of lib.lua, with the session's keys
-- KEYS[FIRST_KEY..] = locks of the files, directories and globs to claim
-- own ARGV: conversation id, most files a session may hold, most files a key's sessions
--           may hold, most directory/glob claims in the workspace, how long new claims
--           last (ms), n, then n field/value pairs to set on the session (begin_event),
--           then one path per lock key, then one matcher per lock key ('' for a file;
--           globs.py makes them)
-- publishes as touch.lua does
-- returns {'revoked'} | {'limited', ...} | {'full'} | {'not_owner'}
--       | {'ok', created, expiry in epoch ms} | {'deny', created, ...} (holder_of in event.lua)
--       | {'over_cap', created, 'session' | 'key' | 'patterns', the cap, held}
local _, max_session_files, max_key_files, max_patterns, ttl = own_args(5)
local s, refused = begin_event(false, 5)
if refused then return refused end
s.ttl = tonumber(ttl)
s.specs = {}
local items = #KEYS - FIRST_KEY + 1
local new_patterns = 0
for i = FIRST_KEY, #KEYS do
  local spec = ARGV[s.first_path + items + i - FIRST_KEY]
  if spec ~= '' then
    s.specs[i] = spec
    if redis.call('HEXISTS', K.patterns, string.lower(ARGV[s.first_path + i - FIRST_KEY])) == 0 then
      new_patterns = new_patterns + 1
    end
  end
end
if new_patterns > 0 then
  local held = redis.call('HLEN', K.patterns)
  if held + new_patterns > tonumber(max_patterns) then
    settle(s)
    return {'over_cap', s.created, 'patterns', tonumber(max_patterns), held}
  end
end
local denied = claim(s, tonumber(max_session_files), tonumber(max_key_files))
if denied then return denied end
settle(s)
return {'ok', s.created, s.now + s.ttl}
