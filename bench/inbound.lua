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

-- A monotonic clock in ms (wrk's Lua is LuaJIT; os.time counts whole seconds).
local ffi = require("ffi")
ffi.cdef("typedef struct { long tv_sec; long tv_nsec; } bench_timespec; int clock_gettime(int, bench_timespec *);")
local timespec = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, timespec)  -- 1: CLOCK_MONOTONIC
  return tonumber(timespec.tv_sec) * 1000 + tonumber(timespec.tv_nsec) / 1e6
end

function init(args)
  run = os.getenv("BENCH_RUN") or tostring(os.time())
  -- RATE (requests/s over all THREADS wrk threads) paces by a schedule: each thread hands
  -- out send times RATE/THREADS apart, so a slow answer does not lower the offered rate
  -- while a connection is free. Unset: as fast as it goes.
  local rate = tonumber(os.getenv("RATE") or "")
  local threads = tonumber(os.getenv("THREADS") or "2")
  interval_ms = rate and (threads * 1000 / rate) or 0
end

function delay()
  if interval_ms == 0 then
    return 0
  end
  local now = now_ms()
  next_send_ms = next_send_ms or now
  local wait = next_send_ms - now
  next_send_ms = next_send_ms + interval_ms
  return wait > 0 and wait or 0
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
