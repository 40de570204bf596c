#!/usr/bin/env bash
# The reference flow on an emulated node: two workers, each a network namespace with
# a T62100-CR whose VFs are real veth netdevs, cabled VF to VF, MTU 9000 as the
# reference procedure sets. One pod per worker gets a VF through chelsio-sriov with
# the reference NetworkAttachmentDefinition's config (type chelsio-sriov), and gives
# it back. Needs root. Everything it creates is removed on exit, on failure and on
# Ctrl-C.
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/bin}
NAME=${DEMO_NAME:-chelsio-emu-demo}
VFS=${DEMO_VFS:-8}
CVF="$BIN/chelsio-vf"
VF=0000:81:01.0

if [ "$(id -u)" != 0 ]; then
  echo "make demo needs root (it creates network namespaces): run sudo make demo" >&2
  exit 1
fi

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

WORK=$(mktemp -d /tmp/chelsio-demo.XXXXXX)
PODS=()
cleanup() {
  step "cleanup"
  for w in 1 2; do
    [ -f "$WORK/pod$w.added" ] && cni "$w" DEL >/dev/null 2>&1 || true
  done
  for p in "${PODS[@]}"; do ip netns del "$p" 2>/dev/null || true; done
  "$CVF" emulate down --name "$NAME" || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The reference NAD's config, type changed, with an RFC 5737 subnet (the
# reference's 102.100.2.0/24 is public address space), and what Multus adds:
# deviceID and pciBusID. Each worker keeps its own state, as each node does.
conf() {
  cat <<JSON
{"type": "chelsio-sriov", "cniVersion": "0.3.1", "name": "sriov-network",
 "ipam": {"type": "host-local", "subnet": "198.51.100.0/24", "routes": [{"dst": "0.0.0.0/0"}],
          "gateway": "198.51.100.1", "dataDir": "$WORK/ipam"},
 "deviceID": "$VF", "pciBusID": "$VF", "dataDir": "$WORK/state-w$1"}
JSON
}

# cni W VERB: run chelsio-sriov on worker W for its pod, as the runtime would.
cni() {
  conf "$1" | CNI_COMMAND=$2 CNI_CONTAINERID="demo-pod$1" CNI_NETNS="/run/netns/$NAME-pod$1" \
    CNI_IFNAME=net1 CNI_ARGS="IgnoreUnknown=true;K8S_POD_NAME=testpod$1" CNI_PATH="$BIN:$BIN/cni" \
    "$CVF" emulate exec --name "$NAME" --worker "$1" -- "$BIN/chelsio-sriov"
}

step "emulate up: 2 workers, $VFS VFs each, MTU 9000"
"$CVF" emulate down --name "$NAME" >/dev/null 2>&1 || true
"$CVF" emulate up --name "$NAME" --vfs "$VFS" --mtu 9000

for w in 1 2; do
  step "worker $w: chelsio-vf list"
  "$CVF" emulate exec --name "$NAME" --worker "$w" -- "$CVF" list
done

for w in 1 2; do
  step "worker $w: ADD $VF to pod testpod$w as net1"
  ip netns add "$NAME-pod$w"
  PODS+=("$NAME-pod$w")
  cni "$w" ADD
  touch "$WORK/pod$w.added"
  echo
  ip -n "$NAME-pod$w" -br addr show net1
done

step "worker 1: the VF is in the pod, so this worker's sysfs lists no netdev for it"
"$CVF" emulate exec --name "$NAME" --worker 1 -- "$CVF" list | grep -E "PCI ADDRESS|$VF"

for w in 1 2; do
  step "worker $w: DEL"
  cni "$w" DEL
  rm -f "$WORK/pod$w.added"
done

step "worker 1: the VF is back, with its name, MTU 9000 and MAC"
# The emulated sysfs follows the netdev a few milliseconds after the kernel.
for _ in $(seq 50); do
  "$CVF" emulate exec --name "$NAME" --worker 1 -- "$CVF" list --json | grep -q '"netdev": "enp129s1"' && break
  sleep 0.1
done
"$CVF" emulate exec --name "$NAME" --worker 1 -- "$CVF" list | grep -E "PCI ADDRESS|$VF"
"$CVF" emulate exec --name "$NAME" --worker 1 -- ip -o link show enp129s1 | cut -d' ' -f2-5
