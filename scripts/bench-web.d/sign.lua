-- wrk script: POST a signature with a different e-mail address on every request, count the
-- answers by status, and print one machine-readable line at the end.
-- Environment: BENCH_PATH (the signatures URL path), BENCH_RUN (a prefix unique to this run).
local threads = {}
local counter = 1

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  n = 0
  created, other = 0, 0
  path = os.getenv("BENCH_PATH")
  run = os.getenv("BENCH_RUN") or "r"
  headers = { ["Content-Type"] = "application/json" }
end

function request()
  n = n + 1
  local body = string.format('{"name":"Bench %d-%d","email":"%s-%d-%d@bench.example"}', tid, n, run, tid, n)
  return wrk.format("POST", path, headers, body)
end

function response(status, hdrs, body)
  if status == 201 then created = created + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local c, o = 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("created")
    o = o + t:get("other")
  end
  io.write(string.format("RESULT requests=%d rps=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f created=%d other=%d errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    c, o, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
