# bench/proxy/summary.awk: medians of bench/proxy/run.sh's runs.tsv.
#
#   awk -F'\t' -v order="rampart nginx haproxy" -f bench/proxy/summary.awk runs.tsv
#
# One line per (proxy, conns, backends) in the order the cases ran: the
# median req/s, p50 and p99 over the rounds, req/s and p99 relative to
# nginx's medians in the same case (x_nginx above 1 and p99/ngx below 1 are
# better than nginx), the median CPU time the proxy's processes used per
# request in microseconds (user + system, from /proc: steadier than req/s on
# a shared machine), the median read and write system calls the proxy's
# processes made per request (syscr and syscw from /proc/PID/io; "-" when
# no round recorded them, as in runs.tsv files from before these columns),
# socket errors plus non-2xx/3xx answers, and rounds.
function median(key,    n, i, j, v, a) {
	n = cnt[key]
	for (i = 1; i <= n; i++) a[i] = vals[key, i]
	for (i = 2; i <= n; i++) { v = a[i]; for (j = i - 1; j >= 1 && a[j] > v; j--) a[j + 1] = a[j]; a[j + 1] = v }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function add(key, v) { vals[key, ++cnt[key]] = v }
# opt(key): the median of key with two decimals, or "-" without values.
function opt(key) { return (key in cnt) ? sprintf("%.2f", median(key)) : "-" }
NR == 1 { next }
{
	k = $2 SUBSEP $3 SUBSEP $4
	if (!(k in seen)) { seen[k] = 1; if (!(($3 SUBSEP $4) in cs)) { cs[$3 SUBSEP $4] = 1; cases[++nc] = $3 SUBSEP $4 } }
	add("rps" SUBSEP k, $5); add("p50" SUBSEP k, $6); add("p99" SUBSEP k, $7); add("cpu" SUBSEP k, $11)
	# Columns 12 and 13 came later: absent in older files, "-" when unreadable.
	if (NF >= 12 && $12 != "" && $12 != "-") add("rd" SUBSEP k, $12)
	if (NF >= 13 && $13 != "" && $13 != "-") add("wr" SUBSEP k, $13)
	errs[k] += $9 + $10; rounds[k]++
}
END {
	np = split(order, procs, " ")
	printf "%-8s %5s %8s %10s %8s %8s %8s %8s %8s %6s %6s %6s %6s\n", "proxy", "conns", "backends", "req/s", "p50_us", "p99_us", "x_nginx", "p99/ngx", "cpu_us/r", "rd/req", "wr/req", "errors", "rounds"
	for (ci = 1; ci <= nc; ci++) {
		split(cases[ci], cb, SUBSEP)
		nk2 = "nginx" SUBSEP cases[ci]
		nrps = (nk2 in seen) ? median("rps" SUBSEP nk2) : 0
		np99 = (nk2 in seen) ? median("p99" SUBSEP nk2) : 0
		for (pi = 1; pi <= np; pi++) {
			k = procs[pi] SUBSEP cases[ci]
			if (!(k in seen)) continue
			rps = median("rps" SUBSEP k); p99 = median("p99" SUBSEP k)
			printf "%-8s %5d %8d %10.0f %8.0f %8.0f %8s %8s %8.1f %6s %6s %6d %6d\n", procs[pi], cb[1], cb[2], rps, median("p50" SUBSEP k), p99,
				(nrps > 0 ? sprintf("%.2f", rps / nrps) : "-"), (np99 > 0 ? sprintf("%.2f", p99 / np99) : "-"), median("cpu" SUBSEP k),
				opt("rd" SUBSEP k), opt("wr" SUBSEP k), errs[k], rounds[k]
		}
	}
}
