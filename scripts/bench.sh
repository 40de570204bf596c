#!/usr/bin/env bash
# The node-level benchmark on an emulated node of one worker with 64 VFs:
#   cnibench: K sequential ADD+DEL cycles of chelsio-sriov next to the floor (no
#     IPAM) and next to the reference host-device plugin (same host-local IPAM),
#     interleaved; then for each N of the comma list N, N ADDs and N DELs at once
#     by the floor, the floor with host-local, chelsio-sriov with host-local and
#     without IPAM, in turn, three rounds (one when K <= 5), with the plugin's
#     own step timings summed up;
#   dpbench: the device plugin's start, RSS, Allocate, kubelet restart, port link down,
#     VF count change with uevents and with rescans only;
#   report: one table of every figure against its target, and bench/results.json.
# Needs root; removes everything it creates, also on failure. K <= 5 is a short run.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/bin}
GO=${GO:-go}
NAME=${BENCH_NAME:-chelsio-emu-bench}
K=${K:-50}
N=${N:-16,64}
CNI_PLUGINS_VERSION=${CNI_PLUGINS_VERSION:-v1.9.1}
TAG=sh$$
mkdir -p bench

if [ "$(id -u)" != 0 ]; then
  echo "the node benchmark needs root (network namespaces): run sudo make bench" >&2
  exit 1
fi
if [ ! -x "$BIN/cni/host-device" ]; then
  GOBIN=$BIN/cni CGO_ENABLED=0 "$GO" install "github.com/containernetworking/plugins/plugins/main/host-device@$CNI_PLUGINS_VERSION"
fi
if [ ! -x "$BIN/cni/host-local" ]; then
  GOBIN=$BIN/cni CGO_ENABLED=0 "$GO" install "github.com/containernetworking/plugins/plugins/ipam/host-local@$CNI_PLUGINS_VERSION"
fi

cleanup() {
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^chelsio-bench-$TAG-" || true); do
    ip netns delete "$ns" 2>/dev/null || true
  done
  rm -rf /var/lib/cni/chelsio-sriov-bench-"$TAG"-* "${TMPDIR:-/tmp}"/chelsio-ipam-bench-"$TAG"-*
  "$BIN/chelsio-vf" emulate down --name "$NAME" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"$BIN/chelsio-vf" emulate down --name "$NAME" >/dev/null 2>&1 || true
"$BIN/chelsio-vf" emulate up --name "$NAME" --vfs 64 --workers 1 >/dev/null

dpflags=()
rounds=3
if [ "$K" -le 5 ]; then
  dpflags=(-starts 2 -allocs 20 -restarts 2 -linkdowns 1 -changes 4)
  rounds=1
fi
rm -f bench/cni.json bench/cni.svg bench/dp.json bench/results.json
"$BIN/chelsio-vf" emulate exec --name "$NAME" --worker 1 -- \
  "$BIN/cnibench" -k "$K" -n "$N" -rounds "$rounds" -tag "$TAG" -plugin "$BIN/chelsio-sriov" -floor "$BIN/floor" \
  -hostdevice "$BIN/cni/host-device" -ipam "$BIN/cni/host-local" -json bench/cni.json -plot bench/cni.svg
"$BIN/dpbench" -dp "$BIN/chelsio-sriov-dp" -cvf "$BIN/chelsio-vf" -emu "$NAME" "${dpflags[@]}" -json bench/dp.json
"$BIN/report" -cni bench/cni.json -dp bench/dp.json -json bench/results.json
