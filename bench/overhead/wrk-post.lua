-- wrk script for the overhead benchmark: the same POST for every request, and a machine-readable
-- summary at the end, because wrk's own report is for reading (two decimal places in a unit it
-- picks per line) and gives only fixed percentiles.
--
-- The path, body and headers come from the environment so that one script serves every target
-- and both API surfaces:
--   BENCH_PATH     request path, e.g. /v1/messages (default: the path in wrk's URL)
--   BENCH_BODY     request body
--   BENCH_HEADERS  extra headers, one "Name: value" per line

wrk.method = "POST"
wrk.path = os.getenv("BENCH_PATH") or wrk.path
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
for name, value in string.gmatch(os.getenv("BENCH_HEADERS") or "", "([^:\n]+):%s*([^\n]*)") do
  wrk.headers[name] = value
end

function done(summary, latency, requests)
  local errors = summary.errors
  -- Latencies are in microseconds, as wrk records them.
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.2f,"stdev":%.2f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
