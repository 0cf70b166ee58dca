#!/usr/bin/env bash
# bench/registry/run.sh: load `rampart registry` on loopback, embedded and
# etcd stores, and report heartbeats/s, heartbeat latency and how long a
# change takes to reach 100 watchers. See bench/registry/README.md.
#
# Builds rampart (./cmd/rampart) and the load program (bench/registry),
# then for each store in STORE: starts a single-node etcd for "etcd"
# (Debian's etcd-server binary, free loopback ports, a temporary data
# directory), starts `rampart registry` on a free loopback port (the
# embedded store in a temporary file), runs the load program against it
# and stops what it started, by PID. Results go to
# bench/results/registry-<timestamp>/<store>/.
#
# Environment (defaults in brackets):
#   STORE     stores to measure, in order: embedded, etcd  [embedded]
#   N         instances                                    [10000]
#   SERVICES  services the instances are spread over       [100]
#   K         heartbeat goroutines                         [32]
#   RATE      target heartbeats/s (0: as fast as possible) [6000]
#   DURATION  heartbeat phase, "10" or "10s"               [10]
#   WATCHERS  watchers of the changed service              [100]
#   CHANGES   timed changes                                [20]
#   WATCH     blocking or sse                              [blocking]
#   ETCD      etcd binary                                  [etcd from PATH]
#   RESULTS   where results go                             [<repo>/bench/results]
set -euo pipefail

STORE=${STORE:-embedded}
N=${N:-10000}
SERVICES=${SERVICES:-100}
K=${K:-32}
RATE=${RATE:-6000}
DURATION=${DURATION:-10}
DURATION=${DURATION%s}
WATCHERS=${WATCHERS:-100}
CHANGES=${CHANGES:-20}
WATCH=${WATCH:-blocking}
ETCD=${ETCD:-etcd}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
RESULTS=${RESULTS:-$root/bench/results}

for v in N SERVICES K DURATION WATCHERS CHANGES RATE; do
	if ! [[ ${!v} =~ ^[0-9]+$ ]]; then
		echo "run.sh: $v=${!v}: want a whole number" >&2
		exit 2
	fi
done
if ((DURATION < 1 || DURATION > 600)); then
	echo "run.sh: DURATION=$DURATION: want 1..600 seconds" >&2
	exit 2
fi
for s in $STORE; do
	case $s in
	embedded) ;;
	etcd)
		if ! command -v "$ETCD" >/dev/null; then
			echo "run.sh: STORE=etcd needs the etcd binary ($ETCD): apt-get install etcd-server, or set ETCD" >&2
			exit 2
		fi
		;;
	*)
		echo "run.sh: STORE: $s: want embedded or etcd" >&2
		exit 2
		;;
	esac
done

work=$(mktemp -d "${TMPDIR:-/tmp}/rampart-regbench.XXXXXX")
pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop PID: SIGTERM, then SIGKILL after 10s; only processes started here.
stop() {
	local pid=$1 i
	kill "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	local rest=()
	for p in "${pids[@]}"; do
		[[ $p == "$pid" ]] || rest+=("$p")
	done
	pids=("${rest[@]}")
}

echo "building rampart and the load program" >&2
(cd "$root" && go build -o "$work/rampart" ./cmd/rampart && go build -o "$work/regbench" ./bench/registry)

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=$RESULTS/registry-$stamp
mkdir -p "$out"
{
	echo "date: $stamp"
	echo "commit: $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo "go: $(go version)"
	echo "cpus: $(nproc)"
	echo "env: STORE='$STORE' N=$N SERVICES=$SERVICES K=$K RATE=$RATE DURATION=$DURATION WATCHERS=$WATCHERS CHANGES=$CHANGES WATCH=$WATCH"
	if command -v "$ETCD" >/dev/null; then echo "etcd: $("$ETCD" --version 2>/dev/null | head -1)"; fi
} >"$out/env.txt"

for s in $STORE; do
	dir=$out/$s
	mkdir -p "$dir"
	args=(registry -listen "127.0.0.1:$("$work/regbench" -free-port)")
	etcd_pid=
	if [[ $s == etcd ]]; then
		cport=$("$work/regbench" -free-port)
		pport=$("$work/regbench" -free-port)
		"$ETCD" --name bench --data-dir "$work/etcd-data" \
			--listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
			--listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
			--initial-cluster "bench=http://127.0.0.1:$pport" --initial-cluster-state new \
			--log-level warn >"$dir/etcd.log" 2>&1 &
		etcd_pid=$!
		pids+=("$etcd_pid")
		"$work/regbench" -wait "http://127.0.0.1:$cport/health" -wait-timeout 30s
		args+=(-store etcd -etcd-endpoints "http://127.0.0.1:$cport" -etcd-prefix /rampart-bench/)
	else
		rm -f "$work/registry.db"
		args+=(-data "$work/registry.db")
	fi
	"$work/rampart" "${args[@]}" 2>"$dir/registry.log" &
	reg_pid=$!
	pids+=("$reg_pid")
	addr=${args[2]}
	echo "== $s: rampart registry (pid $reg_pid) on $addr" >&2
	timeout --signal=TERM $((DURATION + 300)) "$work/regbench" -addr "http://$addr" -label "$s" \
		-n "$N" -services "$SERVICES" -k "$K" -rate "$RATE" -duration "${DURATION}s" \
		-watchers "$WATCHERS" -changes "$CHANGES" -watch "$WATCH" -out "$dir"
	stop "$reg_pid"
	if [[ -n $etcd_pid ]]; then
		stop "$etcd_pid"
		rm -rf "$work/etcd-data"
	fi
done
echo "results in $out" >&2
