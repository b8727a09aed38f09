-- The shared post_generic_unique.lua with ids unique across wrk runs too: its ids start
-- again at 1 on every run (warm-up, each round), which smsgate stores once and answers
-- as duplicates after that. Here every request is a new SMS, as in the floor's table.
-- Same body, same header, same senders as the shared script.
local counter = 0
local thread_id = 0
function setup(thread)
  thread:set("tid", thread_id)
  thread_id = thread_id + 1
end
function init(args)
  tid = tid or 0
  math.randomseed(os.time() + tid)
  run = string.format("%d%04d", os.time(), math.random(0, 9999))
end
function request()
  counter = counter + 1
  local body = string.format("from=%%2B9198%08d&to=57675&body=2&id=bench-%s-%d-%d", (counter * 8 + tid) % 100000000, run, tid, counter)
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Webhook-Secret"] = "bench-secret",
  }, body)
end
