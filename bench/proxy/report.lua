-- wrk script for bench/proxy/run.sh: after the run, print one line
--   RESULT <req/s> <p50 µs> <p99 µs> <requests> <socket errors> <non-2xx/3xx>
-- wrk records latencies in microseconds.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %.1f %d %d %d %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99),
    summary.requests,
    e.connect + e.read + e.write + e.timeout,
    e.status))
end
