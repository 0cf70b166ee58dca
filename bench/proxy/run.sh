#!/usr/bin/env bash
# bench/proxy/run.sh: Rampart, nginx and HAProxy side by side on loopback.
#
# Installs nginx, haproxy and wrk with apt when they are missing, builds
# rampart and the benchmark backend, starts 3 backends, then for 1 and 3
# backends starts each proxy with an equivalent configuration and runs wrk
# (keep-alive, GET, 64-byte response body) at each connection count,
# interleaving the proxies and repeating ROUNDS times. Prints the median of
# each case and the ratio to nginx; raw results go to bench/results/.
# PROXIES may also name gofloor (bench/proxy/floor), a minimal Go keep-alive
# forwarder: the floor of what a Go proxy reaches here, not a proxy.
# See bench/proxy/README.md.
#
# Environment (defaults in brackets):
#   DURATION  seconds per wrk run, "10" or "10s"          [10]
#   ROUNDS    repetitions of every case                   [3]
#   CONNS     wrk connection counts                       ["64 8"]
#   BACKENDS  backend counts (1 to 3)                     ["1 3"]
#   PROXIES   proxies, in interleaving order: rampart, nginx,
#             haproxy, gofloor, rampart-nohealth,
#             rampart-health                              ["rampart nginx haproxy"]
#   CPUS      worker processes/threads/GOMAXPROCS per proxy [2]
#   THREADS   wrk threads                                 [2]
#   WARMUP    seconds of unmeasured load per proxy start  [2]
#   RESULTS   where to write raw results                  [<repo>/bench/results]
#   PROFILE   1: run rampart with CPU and allocation profiling (slower;
#             the profiles land beside the results)           [0]
set -euo pipefail

DURATION=${DURATION:-10}
DURATION=${DURATION%s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-"64 8"}
BACKENDS=${BACKENDS:-"1 3"}
PROXIES=${PROXIES:-"rampart nginx haproxy"}
CPUS=${CPUS:-2}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-2}
PROFILE=${PROFILE:-0}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
RESULTS=${RESULTS:-$root/bench/results}

for v in DURATION ROUNDS CPUS THREADS WARMUP; do
	if ! [[ ${!v} =~ ^[0-9]+$ ]] || ((${!v} < 1)); then
		echo "run.sh: $v=${!v}: want a whole number >= 1" >&2
		exit 2
	fi
done
for b in $BACKENDS; do
	if ! [[ $b =~ ^[123]$ ]]; then
		echo "run.sh: BACKENDS: $b: want 1, 2 or 3" >&2
		exit 2
	fi
done
for c in $CONNS; do
	if ! [[ $c =~ ^[0-9]+$ ]] || ((c < THREADS)); then
		echo "run.sh: CONNS: $c: want a whole number >= THREADS ($THREADS)" >&2
		exit 2
	fi
done
for p in $PROXIES; do
	case $p in rampart | rampart-nohealth | rampart-health | nginx | haproxy | gofloor) ;; *)
		echo "run.sh: PROXIES: unknown proxy $p" >&2
		exit 2
		;;
	esac
done

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- tools -----------------------------------------------------------------

PATH=$PATH:/usr/sbin:/sbin

install_tools() {
	local need=()
	command -v nginx >/dev/null || need+=(nginx)
	command -v haproxy >/dev/null || need+=(haproxy)
	command -v wrk >/dev/null || need+=(wrk)
	((${#need[@]} == 0)) && return 0
	local sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		sudo=(sudo)
	fi
	log "installing ${need[*]} with apt"
	# Keep the packages' maintainer scripts from starting system-wide nginx
	# or haproxy services (on port 80, all interfaces) while installing.
	local policy=/usr/sbin/policy-rc.d added_policy=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
		"${sudo[@]}" chmod 755 "$policy"
		added_policy=1
	fi
	local rc=0
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq || rc=$?
	if ((rc == 0)); then
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || rc=$?
	fi
	if ((added_policy)); then
		"${sudo[@]}" rm -f "$policy"
	fi
	return "$rc"
}
install_tools

work=$(mktemp -d "${TMPDIR:-/tmp}/rampart-bench.XXXXXX")
chmod 755 "$work" # nginx workers may run as another user

# --- processes -------------------------------------------------------------

# pids lists every process this script started; each is ended by PID.
pids=()

stop_pid() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	for pid in "${pids[@]}"; do
		stop_pid "$pid"
	done
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD...: runs CMD in the background with output in
# $work/NAME.log and records its PID in started.
start() {
	local name=$1
	shift
	: >"$work/$name.log" # exists before the command writes it: callers poll it
	"$@" >>"$work/$name.log" 2>&1 &
	started=$!
	pids+=("$started")
}

# forget PID: stops PID and removes it from pids.
forget() {
	local pid=$1 keep=() p
	stop_pid "$pid"
	for p in "${pids[@]}"; do
		[[ $p == "$pid" ]] || keep+=("$p")
	done
	pids=("${keep[@]}")
}

# --- build -----------------------------------------------------------------

log "building rampart, the bench backend and gofloor into $work"
rampart_pkg=./cmd/rampart
if [[ $PROFILE == 1 ]]; then
	rampart_pkg=./bench/proxy/rampartprof
fi
(cd "$root" && go build -trimpath -o "$work/rampart" "$rampart_pkg")
(cd "$root" && go build -trimpath -o "$work/backend" ./bench/proxy/backend)
(cd "$root" && go build -trimpath -o "$work/gofloor" ./bench/proxy/floor)

backend_addrs=()
for i in 1 2 3; do
	start "backend$i" "$work/backend" -listen 127.0.0.1:0 -name "b$i"
	for ((t = 0; t < 100; t++)); do
		addr=$(awk '$1 == "LISTENING" {print $2}' "$work/backend$i.log")
		[[ -n $addr ]] && break
		sleep 0.05
	done
	if [[ -z $addr ]]; then
		echo "run.sh: backend $i did not start:" >&2
		cat "$work/backend$i.log" >&2
		exit 1
	fi
	backend_addrs+=("$addr")
done
log "backends: ${backend_addrs[*]}"
for a in "${backend_addrs[@]}"; do
	"$work/backend" -wait "http://$a/"
done

# --- configurations ----------------------------------------------------------

# Rampart with its defaults (ewma, retries and the retry budget on, metrics
# always on), the access log off like nginx's and HAProxy's below.
#
# The variants price health bookkeeping against the same build:
# rampart-nohealth turns outlier detection (on by default) off;
# rampart-health adds active health checks and per-endpoint circuit
# breakers to the defaults. Only plain rampart serves the admin API.
config_rampart() { # dir port admin_port variant backends...
	local dir=$1 port=$2 admin=$3 variant=$4
	shift 4
	{
		if [[ $variant == rampart ]]; then
			echo "admin: {address: 127.0.0.1:$admin}"
		else
			echo "admin: {address: \"\"}"
		fi
		echo "access_log: {enabled: false}"
		echo "listeners: [{name: bench, address: 127.0.0.1:$port}]"
		echo "clusters:"
		echo "  - name: backends"
		case $variant in
		rampart-nohealth) echo "    outlier_detection: {enabled: false}" ;;
		rampart-health)
			echo "    health_check: {path: /, interval: 1s, timeout: 500ms}"
			echo "    circuit_breaker: {}"
			;;
		esac
		echo "    endpoints:"
		local a
		for a in "$@"; do
			echo "      - {address: $a}"
		done
		echo "routes:"
		echo "  - {name: bench, cluster: backends}"
	} >"$dir/rampart.yaml"
}

# nginx: round robin, a keep-alive pool to the upstreams, X-Forwarded-*
# like Rampart; proxy_next_upstream's default (error timeout) retries a
# failed connection on the next server, like Rampart's default retry.
config_nginx() { # dir port backends...
	local dir=$1 port=$2
	shift 2
	mkdir -p "$dir/tmp"
	{
		echo "worker_processes $CPUS;"
		echo "daemon off;"
		echo "pid $dir/nginx.pid;"
		echo "error_log $dir/error.log warn;"
		echo "events { worker_connections 4096; }"
		echo "http {"
		echo "  access_log off;"
		echo "  client_body_temp_path $dir/tmp/body;"
		echo "  proxy_temp_path $dir/tmp/proxy;"
		echo "  fastcgi_temp_path $dir/tmp/fastcgi;"
		echo "  uwsgi_temp_path $dir/tmp/uwsgi;"
		echo "  scgi_temp_path $dir/tmp/scgi;"
		echo "  keepalive_requests 1000000;"
		echo "  upstream backends {"
		local a
		for a in "$@"; do
			echo "    server $a;"
		done
		echo "    keepalive 256;"
		echo "    keepalive_requests 1000000;"
		echo "  }"
		echo "  server {"
		echo "    listen 127.0.0.1:$port;"
		echo "    location / {"
		echo "      proxy_pass http://backends;"
		echo "      proxy_http_version 1.1;"
		echo "      proxy_set_header Connection \"\";"
		echo "      proxy_set_header Host \$host;"
		echo "      proxy_set_header X-Forwarded-For \$remote_addr;"
		echo "      proxy_set_header X-Forwarded-Proto \$scheme;"
		echo "      proxy_set_header X-Forwarded-Host \$host;"
		echo "    }"
		echo "  }"
		echo "}"
	} >"$dir/nginx.conf"
}

# HAProxy: round robin, server connections shared and kept alive
# (http-reuse always, nginx's keepalive pool behaviour), one retry of a
# failed connection on another server (retries 1 + redispatch),
# X-Forwarded-For added, no logging.
config_haproxy() { # dir port backends...
	local dir=$1 port=$2
	shift 2
	{
		echo "global"
		echo "  nbthread $CPUS"
		echo "  maxconn 4096"
		echo "defaults"
		echo "  mode http"
		echo "  timeout connect 1s"
		echo "  timeout client 60s"
		echo "  timeout server 60s"
		echo "  timeout http-keep-alive 60s"
		echo "  option http-keep-alive"
		echo "  http-reuse always"
		echo "  retries 1"
		echo "  option redispatch"
		echo "frontend bench"
		echo "  bind 127.0.0.1:$port"
		echo "  option forwardfor"
		echo "  http-request set-header X-Forwarded-Proto http"
		echo "  default_backend backends"
		echo "backend backends"
		echo "  balance roundrobin"
		local a i=1
		for a in "$@"; do
			echo "  server b$i $a"
			i=$((i + 1))
		done
	} >"$dir/haproxy.cfg"
}

# gofloor: the Go floor (bench/proxy/floor), one upstream connection per
# client connection, backends round robin per client connection, no header
# rewriting. Its command line is its configuration.
config_gofloor() { # dir port backends...
	local dir=$1 port=$2 to
	shift 2
	printf -v to '%s,' "$@"
	printf '%s\n' "-listen 127.0.0.1:$port -to ${to%,}" >"$dir/gofloor.args"
}

# start_proxy NAME DIR PORT ADMIN BACKENDS...: configures and starts a proxy
# and waits until it answers. Sets started to its PID.
start_proxy() {
	local name=$1 dir=$2 port=$3 admin=$4
	shift 4
	mkdir -p "$dir"
	case $name in
	rampart | rampart-nohealth | rampart-health)
		config_rampart "$dir" "$port" "$admin" "$name" "$@"
		local prof=
		[[ $name == rampart ]] && prof=$profile_prefix # one profile per run
		start "$name" env GOMAXPROCS="$CPUS" \
			RAMPART_CPUPROFILE="${prof:+$prof.cpu.pprof}" \
			RAMPART_MEMPROFILE="${prof:+$prof.allocs.pprof}" \
			"$work/rampart" run -c "$dir/rampart.yaml"
		;;
	nginx)
		config_nginx "$dir" "$port" "$@"
		nginx -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
		start nginx nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
		;;
	haproxy)
		config_haproxy "$dir" "$port" "$@"
		haproxy -c -q -f "$dir/haproxy.cfg"
		start haproxy haproxy -db -f "$dir/haproxy.cfg"
		;;
	gofloor)
		config_gofloor "$dir" "$port" "$@"
		local -a args
		read -r -a args <"$dir/gofloor.args"
		start gofloor env GOMAXPROCS="$CPUS" "$work/gofloor" "${args[@]}"
		;;
	esac
	if ! "$work/backend" -wait "http://127.0.0.1:$port/" -timeout 15s; then
		echo "run.sh: $name did not come up; its log:" >&2
		cat "$work/$name.log" >&2 || true
		exit 1
	fi
}

# --- runs ------------------------------------------------------------------

stamp=$(date +%Y%m%d-%H%M%S)
out="$RESULTS/proxy-$stamp"
mkdir -p "$out"
runs="$out/runs.tsv"
printf 'round\tproxy\tconns\tbackends\trps\tp50_us\tp99_us\trequests\terrors\tnon2xx\tcpu_us_per_req\treads_per_req\twrites_per_req\n' >"$runs"

{
	echo "date: $(date -Is)"
	echo "host: $(uname -srm), $(nproc) CPUs"
	echo "go: $(go version)"
	echo "rampart: $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$root" && git diff --quiet HEAD -- 2>/dev/null || echo ' (dirty tree)')"
	echo "nginx: $(nginx -v 2>&1)"
	echo "haproxy: $(haproxy -v 2>&1 | head -1)"
	echo "wrk: $(wrk -v 2>&1 | head -1)"
	echo "settings: DURATION=${DURATION}s ROUNDS=$ROUNDS CONNS='$CONNS' BACKENDS='$BACKENDS' CPUS=$CPUS THREADS=$THREADS WARMUP=${WARMUP}s PROFILE=$PROFILE"
	echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/env.txt"

# cpu_ticks PID: user+system CPU ticks of PID and its child processes
# (nginx's workers) so far.
cpu_ticks() {
	local pid t=0 f
	for pid in "$1" $(pgrep -P "$1" || true); do
		f=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
		f=${f##*) } # fields after "(comm) "; utime and stime are 12th and 13th
		read -r -a fs <<<"$f"
		t=$((t + fs[11] + fs[12]))
	done
	echo "$t"
}
clk_tck=$(getconf CLK_TCK)

# io_calls PID: read and write system calls of PID and its child processes
# (nginx's workers) so far, "READS WRITES", from syscr and syscw in
# /proc/PID/io: read(2), readv(2), pread(2)... and write(2), writev(2)...;
# recv, recvmsg, send and sendmsg are not counted there. Prints "- -" when
# any of the processes' files cannot be read (another user's process without
# CAP_SYS_PTRACE, or one that has just exited): a partial sum would be wrong.
io_calls() {
	local pid r=0 w=0 f k v seen
	for pid in "$1" $(pgrep -P "$1" || true); do
		f=$(cat "/proc/$pid/io" 2>/dev/null) || f=
		seen=0
		while read -r k v; do
			case $k in
			syscr:) r=$((r + v)) seen=$((seen + 1)) ;;
			syscw:) w=$((w + v)) seen=$((seen + 1)) ;;
			esac
		done <<<"$f"
		if ((seen != 2)); then
			echo "- -"
			return
		fi
	done
	echo "$r $w"
}

# per_req BEFORE AFTER REQUESTS: (AFTER - BEFORE) / REQUESTS with two
# decimals, or "-" when a count is missing or there were no requests.
per_req() {
	if [[ $1 == - || $2 == - ]]; then
		echo -
		return
	fi
	awk -v d=$(($2 - $1)) -v n="$3" 'BEGIN { if (n > 0) printf "%.2f", d / n; else printf "-" }'
}

wrk_run() { # port conns duration -> RESULT line
	wrk -t"$THREADS" -c"$2" -d"$3s" -s "$here/report.lua" "http://127.0.0.1:$1/" | awk '$1 == "RESULT"'
}

total=0
for b in $BACKENDS; do
	for c in $CONNS; do
		for p in $PROXIES; do
			total=$((total + ROUNDS))
		done
	done
done
log "$total runs of ${DURATION}s; results in $out"

n=0
for b in $BACKENDS; do
	read -r -a ports <<<"$("$work/backend" -free-ports 7)"
	declare -A port=([rampart]=${ports[0]} [nginx]=${ports[2]} [haproxy]=${ports[3]} [gofloor]=${ports[4]}
		[rampart-nohealth]=${ports[5]} [rampart-health]=${ports[6]})
	admin=${ports[1]}
	declare -A ppid=()
	profile_prefix=
	if [[ $PROFILE == 1 ]]; then
		profile_prefix="$out/rampart-${b}backends"
	fi
	for p in $PROXIES; do
		start_proxy "$p" "$work/$p-$b" "${port[$p]}" "$admin" "${backend_addrs[@]:0:b}"
		ppid[$p]=$started
		for f in "$work/$p-$b"/{rampart.yaml,nginx.conf,haproxy.cfg,gofloor.args}; do
			if [[ -e $f ]]; then
				base=${f##*/}
				cp "$f" "$out/${base%.*}-${b}backends.${base##*.}"
			fi
		done
		wrk_run "${port[$p]}" 64 "$WARMUP" >/dev/null
	done
	for ((r = 1; r <= ROUNDS; r++)); do
		for c in $CONNS; do
			for p in $PROXIES; do
				n=$((n + 1))
				t0=$(cpu_ticks "${ppid[$p]}")
				read -r r0 w0 <<<"$(io_calls "${ppid[$p]}")"
				line=$(wrk_run "${port[$p]}" "$c" "$DURATION")
				read -r r1 w1 <<<"$(io_calls "${ppid[$p]}")"
				t1=$(cpu_ticks "${ppid[$p]}")
				if [[ -z $line ]]; then
					echo "run.sh: wrk printed no result for $p c=$c backends=$b" >&2
					exit 1
				fi
				read -r _ rps p50 p99 reqs errs non2xx <<<"$line"
				cpu=$(awk -v t=$((t1 - t0)) -v hz="$clk_tck" -v n="$reqs" 'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }')
				rd=$(per_req "$r0" "$r1" "$reqs")
				wr=$(per_req "$w0" "$w1" "$reqs")
				printf '%d\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$p" "$c" "$b" "$rps" "$p50" "$p99" "$reqs" "$errs" "$non2xx" "$cpu" "$rd" "$wr" >>"$runs"
				log "[$n/$total] round $r $p c=$c backends=$b: $rps req/s p50 ${p50}us p99 ${p99}us cpu ${cpu}us/req reads ${rd}/req writes ${wr}/req errors $errs non-2xx $non2xx"
			done
		done
	done
	for p in $PROXIES; do
		cp "$work/$p.log" "$out/$p-${b}backends.log" 2>/dev/null || true
		forget "${ppid[$p]}"
	done
	unset port ppid
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/env.txt"

# --- summary -------------------------------------------------------------------

# Medians per (proxy, conns, backends), in the order the cases ran, with
# req/s and p99 relative to nginx's in the same case.
awk -F'\t' -v order="$PROXIES" -f "$here/summary.awk" "$runs" | tee "$out/summary.txt"
echo
echo "raw results: $out (runs.tsv, summary.txt, env.txt, configs, logs)"
