-- wrk script: the agents' own hook payloads, for hundreds of conversations over thousands of files.
-- wrk ... -s bench/hooks.lua URL -- MODE CONVERSATIONS FILES API_KEY
-- MODE: mixed | start | prompt | pre | post | end
-- mixed: 5% SessionStart, 10% UserPromptSubmit, 40% PreToolUse, 40% PostToolUse, 5% SessionEnd,
-- spread over Claude Code, Cursor and Codex shapes. done() prints one JSON line of results.
local threads = {}
local mode, conversations, files

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  mode = args[1] or "mixed"
  conversations = tonumber(args[2] or "500")
  files = tonumber(args[3] or "5000")
  wrk.headers["Authorization"] = "Bearer " .. (args[4] or "")
  wrk.headers["Content-Type"] = "application/json"
  math.randomseed(os.time() + (id or 0) * 7919)
end

local function claude(event, conv, extra)
  return '{"session_id":"claude-' .. conv .. '","transcript_path":"/home/dev/.claude/t.jsonl",'
    .. '"cwd":"/home/dev/repo","hook_event_name":"' .. event .. '"' .. extra .. '}'
end

-- Each event its own id (the service answers an event's second copy as its first).
local sent = 0
local function next_id()
  sent = sent + 1
  return tostring(sent)
end

local function cursor(event, conv, extra)
  return '{"conversation_id":"cursor-' .. conv .. '","generation_id":"g' .. next_id()
    .. '","hook_event_name":"' .. event .. '","workspace_roots":["/home/dev/repo"],'
    .. '"cursor_version":"2.1"' .. extra .. '}'
end

local function codex(event, conv, extra)
  return '{"session_id":"codex-' .. conv .. '","cwd":"/home/dev/repo","hook_event_name":"'
    .. event .. '","model":"gpt-5.5","turn_id":"t"' .. extra .. '}'
end

local function file_path(n)
  return "/home/dev/repo/src/module" .. (n % 97) .. "/file" .. n .. ".ts"
end

local builders = {
  start = function(agent, conv, file)
    if agent == "cursor" then return cursor("sessionStart", conv, "") end
    if agent == "codex" then return codex("SessionStart", conv, "") end
    return claude("SessionStart", conv, ',"source":"startup"')
  end,
  prompt = function(agent, conv, file)
    local prompt = ',"prompt":"Refactor the module ' .. file .. ' and add tests"'
    if agent == "cursor" then return cursor("beforeSubmitPrompt", conv, prompt) end
    if agent == "codex" then return codex("UserPromptSubmit", conv, prompt) end
    return claude("UserPromptSubmit", conv, prompt)
  end,
  ["end"] = function(agent, conv, file)
    if agent == "cursor" then return cursor("sessionEnd", conv, "") end
    if agent == "codex" then return codex("SessionEnd", conv, "") end
    return claude("SessionEnd", conv, ',"reason":"exit"')
  end,
}

-- A write of one file, as each agent's PreToolUse or PostToolUse reports it.
local function tool_use(cursor_event, event)
  return function(agent, conv, file)
    if agent == "cursor" then
      return cursor(cursor_event, conv, ',"tool_name":"Write","tool_input":{"file_path":"'
        .. file_path(file) .. '"}')
    end
    if agent == "codex" then
      return codex(event, conv, ',"tool_name":"apply_patch","tool_input":{"command":'
        .. '"*** Begin Patch\\n*** Update File: src/module' .. (file % 97) .. '/file' .. file
        .. '.ts\\n*** End Patch"}')
    end
    return claude(event, conv, ',"tool_name":"Edit","tool_input":{"file_path":"'
      .. file_path(file) .. '"},"tool_use_id":"toolu_' .. next_id() .. '"')
  end
end
builders.pre = tool_use("preToolUse", "PreToolUse")
builders.post = tool_use("postToolUse", "PostToolUse")

local agents = {"claude-code", "cursor", "codex"}

local function pick_kind()
  if mode ~= "mixed" then return mode end
  local r = math.random(100)
  if r <= 5 then return "start" end
  if r <= 15 then return "prompt" end
  if r <= 55 then return "pre" end
  if r <= 95 then return "post" end
  return "end"
end

function request()
  local conv = math.random(conversations)
  local agent = agents[conv % 3 + 1]
  local body = builders[pick_kind()](agent, conv, math.random(files))
  return wrk.format("POST", "/workspaces/sessions/hook?agent=" .. agent, nil, body)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"non_2xx":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
