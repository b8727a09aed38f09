-- One inbound SMS per request, each with its own provider id and phone, so every
-- request is a new message (duplicates are tested elsewhere) and gets one reply.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("tid", thread_id)
  thread_id = thread_id + 1
  table.insert(threads, thread)
end

function init(args)
  run = os.getenv("BENCH_RUN") or tostring(os.time())
  -- RATE (requests/s over all connections) paces each connection; unset: as fast as it goes.
  local rate = tonumber(os.getenv("RATE") or "")
  local connections = tonumber(os.getenv("CONNECTIONS") or "16")
  pause_ms = rate and (connections * 1000 / rate) or 0
end

function delay()
  return pause_ms
end

request = function()
  counter = counter + 1
  local n = tid * 10000000 + counter
  local phone = string.format("+9198%08d", n % 100000000)
  local body = string.format('{"from":"%s","to":"57675","body":"2","id":"bench-%s-%d"}', phone, run, n)
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["X-Webhook-Secret"] = os.getenv("WEBHOOK_SECRET") or "bench-secret",
  }, body)
end

response = function(status, headers, body)
  if status ~= 200 then
    io.stderr:write("status " .. status .. ": " .. body .. "\n")
  end
end
