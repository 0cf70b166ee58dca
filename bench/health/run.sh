#!/usr/bin/env bash
# bench/health/run.sh: the price of health bookkeeping in the gateway.
#
# Runs BenchmarkServeHTTP's cases with health bookkeeping off
# (health-off: outlier detection disabled), at its default (default:
# passive outlier detection on), with active health checks (health-checks)
# and with per-endpoint circuit breakers (breakers), interleaved ROUNDS
# times so that a noisy phase of the machine hits every case alike, and
# prints per case the min and median ns/op and the median relative to
# health-off of the same upstream kind.
#
#   bench/health/run.sh                 # 10 rounds of 1s per case
#   ROUNDS=4 BENCHTIME=500ms bench/health/run.sh
set -euo pipefail
ROUNDS=${ROUNDS:-10}
BENCHTIME=${BENCHTIME:-1s}
CASES=${CASES:-"health-off/static default/static health-checks/static breakers/static health-off/loopback default/loopback health-checks/loopback"}

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/rampart-health-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
out="$root/bench/results/health-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"

(cd "$root" && go test -c -o "$work/gateway.test" ./gateway)
echo "rampart: $(cd "$root" && git rev-parse --short HEAD)$(cd "$root" && git diff --quiet HEAD -- || echo ' (dirty tree)'); ROUNDS=$ROUNDS BENCHTIME=$BENCHTIME; load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$out/env.txt"
for ((r = 1; r <= ROUNDS; r++)); do
	for c in $CASES; do
		# Each level of the name is matched on its own: anchor both.
		name=${c%%/*} kind=${c##*/}
		(cd "$root/gateway" && "$work/gateway.test" -test.run '^$' -test.bench "BenchmarkServeHTTP/^${name}\$/^${kind}\$" \
			-test.benchtime "$BENCHTIME" -test.benchmem) | grep '^Benchmark' >>"$out/runs.txt"
	done
done
awk '
{ sub(/^BenchmarkServeHTTP\//, "", $1); sub(/-[0-9]+$/, "", $1); n[$1]++; v[$1, n[$1]] = $3 }
END {
	for (k in n) {
		m = n[k]
		for (i = 2; i <= m; i++) { x = v[k, i]; for (j = i - 1; j >= 1 && v[k, j] > x; j--) v[k, j + 1] = v[k, j]; v[k, j + 1] = x }
		med[k] = (m % 2) ? v[k, (m + 1) / 2] : (v[k, m / 2] + v[k, m / 2 + 1]) / 2
		lo[k] = v[k, 1]
	}
	for (k in n) {
		split(k, p, "/"); base = "health-off/" p[2]
		printf "%-24s %6d %10.0f %10.0f %14s\n", k, n[k], lo[k], med[k], (base in med) ? sprintf("%+.1f%%", 100 * (med[k] / med[base] - 1)) : "-"
	}
}' "$out/runs.txt" | sort | { printf "%-24s %6s %10s %10s %14s\n" case rounds min_ns median_ns vs_health-off; cat; } | tee "$out/summary.txt"
echo "raw results: $out"
