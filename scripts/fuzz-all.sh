#!/usr/bin/env bash
# Runs every native fuzz target in the module for a short time each.
set -euo pipefail
fuzztime=${1:-10s}
status=0
while IFS= read -r dir; do
	pkg="./$dir"
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | sed 's/^func //' | sort -u); do
		echo "== $pkg $target ($fuzztime)"
		go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" || status=1
	done
done < <(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sed 's|^\./||' | sort -u)
exit $status
