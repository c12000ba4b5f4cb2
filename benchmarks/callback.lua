-- wrk script: POST the benchmarked Dash callback with a fixed cookie.
-- Usage: wrk -s callback.lua URL -- <body-file> <cookie-file>
-- The cookie file holds one Cookie header value per line: with one line every
-- request carries it; with several, requests cycle through them (one browser
-- session per line), starting at a different line in each thread.

local function read_lines(path)
  local lines = {}
  for line in io.lines(path) do
    if #line > 0 then lines[#lines + 1] = line end
  end
  return lines
end

local counter = 0
local thread_index = 0

function setup(thread)
  thread:set("thread_index", counter)
  counter = counter + 1
end

local cookies
local position

function init(args)
  local f = assert(io.open(args[1], "rb"))
  local body = f:read("*a")
  f:close()
  cookies = read_lines(args[2])
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
  if #cookies == 1 then
    wrk.headers["Cookie"] = cookies[1]
  else
    position = (thread_index * 7919) % #cookies
    local headers = {}
    for name, value in pairs(wrk.headers) do headers[name] = value end
    request = function()
      position = position % #cookies + 1
      headers["Cookie"] = cookies[position]
      return wrk.format(nil, nil, headers, nil)
    end
  end
end
