#!/usr/bin/env bash
# Installs the external programs that tests start themselves, when missing.
# Each line of DEPS is "<command> <debian package>". Tests that need one of
# these fail (never skip) when CI=true and the command is absent.
set -euo pipefail

DEPS=(
	"etcd etcd-server"
)

missing=()
for dep in "${DEPS[@]+"${DEPS[@]}"}"; do
	cmd=${dep%% *}
	pkg=${dep##* }
	command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing test dependencies: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
