-- wrk script for benchmarks/serve_load.py: each request POSTs one test sentence, drawn at random from the
-- bodies file (one JSON request body per line), to /translate. At the end it prints one JSON line with
-- the counts and latency percentiles (microseconds) that serve_load.py reads.
--   wrk -t1 -cN -dSs --timeout 120s -s translate.lua URL -- BODIES SEED
local bodies = {}

function init(args)
  for line in io.lines(args[1]) do
    bodies[#bodies + 1] = line
  end
  math.randomseed(tonumber(args[2] or "0"))
end

function request()
  return wrk.format("POST", "/translate", { ["Content-Type"] = "application/json" }, bodies[math.random(#bodies)])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"responses": %d, "duration_us": %d, "socket_errors": %d, "non_2xx": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
