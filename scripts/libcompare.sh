#!/usr/bin/env bash
# Runs bench/libcompare (Rampart's primitives beside sony/gobreaker,
# failsafe-go, go-zero and x/time/rate) and prints a benchstat table with
# one column per library and its ratio to rampart's column.
# Usage: scripts/libcompare.sh [benchtime] [count]
set -euo pipefail
benchtime=${1:-1s}
count=${2:-6}
cd "$(dirname "$0")/.."
out=bench/results
mkdir -p "$out"
raw="$out/libcompare-$(date -u +%Y%m%dT%H%M%SZ).txt"

gobin=$(go env GOPATH)/bin
if [ ! -x "$gobin/benchstat" ]; then
	GOFLAGS= go install golang.org/x/perf/cmd/benchstat@latest
fi

(cd bench/libcompare && go test -run='^$' -bench=. -benchmem -benchtime="$benchtime" -count="$count" .) | tee "$raw"
echo
echo "raw results: $raw"
"$gobin/benchstat" -col /lib "$raw"
