-- wrk script for tests/generated/prod.py: alternate GET /api/hello and GET /, count what was
-- sent and what was answered, and print one line, WRK {json}, at the end.
--
-- wrk counts a reset connection as a socket error, but a connection the server closes with a FIN
-- while a request is on it is silently reconnected: that request is lost without a trace. So
-- requests are counted here. New requests stop at the deadline (a Unix time, the first script
-- argument) and wrk runs on: once a thread has had every request it sent answered it prints
-- DRAINED, and tests/generated/prod.py stops wrk when all have (or a few seconds later).
-- sent - answered is then exactly the number of requests lost.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  deadline = tonumber(args[1])
  if args[2] then  -- the paths to alternate, comma-separated
    paths = {}
    for path in string.gmatch(args[2], "[^,]+") do table.insert(paths, path) end
  end
  sent, answered, non2xx, n = 0, 0, 0, 0
end

local function check_drained()
  if not drained and answered == sent and os.time() >= deadline then
    drained = true
    io.write("DRAINED\n")
    io.flush()
  end
end

paths = {"/api/hello", "/"}

-- Called before every request (and never for the one wrk makes to check the script).
function delay()
  started = true
  if os.time() >= deadline then
    check_drained()
    return 3600000
  end
  return 0
end

function request()
  if not started then
    return wrk.format(nil, "/")
  end
  n = n + 1
  sent = sent + 1
  return wrk.format(nil, paths[n % #paths + 1])
end

function response(status, headers, body)
  answered = answered + 1
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
  check_drained()
end

function done(summary, latency, requests)
  local s, a, b = 0, 0, 0
  for _, t in ipairs(threads) do
    s = s + t:get("sent")
    a = a + t:get("answered")
    b = b + t:get("non2xx")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK {"sent": %d, "answered": %d, "non2xx": %d, "connect": %d, "read": %d, "write": %d, "slow": %d}\n',
    s, a, b, e.connect, e.read, e.write, e.timeout))
end
