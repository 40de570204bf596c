#!/usr/bin/env bash
# The CNI benchmark on an emulated node: K sequential ADD+DEL cycles of
# chelsio-sriov next to the floor (the same netlink work in one small process),
# interleaved. Needs root; removes everything it creates.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/bin}
NAME=${BENCH_NAME:-chelsio-emu-bench}
K=${K:-50}
mkdir -p bench

if [ "$(id -u)" != 0 ]; then
  echo "the CNI benchmark needs root (network namespaces): run sudo make bench" >&2
  exit 1
fi
trap '"$BIN/chelsio-vf" emulate down --name "$NAME" >/dev/null 2>&1 || true' EXIT
trap 'exit 130' INT TERM
"$BIN/chelsio-vf" emulate down --name "$NAME" >/dev/null 2>&1 || true
"$BIN/chelsio-vf" emulate up --name "$NAME" --vfs 2 >/dev/null
"$BIN/chelsio-vf" emulate exec --name "$NAME" --worker 1 -- \
  "$BIN/cnibench" -k "$K" -plugin "$BIN/chelsio-sriov" -floor "$BIN/floor" -json bench/cni.json
echo "figures written to bench/cni.json"
