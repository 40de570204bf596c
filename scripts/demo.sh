#!/usr/bin/env bash
# The reference flow on an emulated node: two workers, each a network namespace with
# a T62100-CR whose VFs are real veth netdevs, cabled VF to VF. Needs root.
# Everything it creates is removed on exit, on failure and on Ctrl-C.
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/bin}
NAME=${DEMO_NAME:-chelsio-emu-demo}
VFS=${DEMO_VFS:-8}
CVF="$BIN/chelsio-vf"

if [ "$(id -u)" != 0 ]; then
  echo "make demo needs root (it creates network namespaces): run sudo make demo" >&2
  exit 1
fi

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

cleanup() {
  step "emulate down"
  "$CVF" emulate down --name "$NAME" || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "emulate up: 2 workers, $VFS VFs each, MTU 9000"
"$CVF" emulate down --name "$NAME" >/dev/null 2>&1 || true
"$CVF" emulate up --name "$NAME" --vfs "$VFS" --mtu 9000

for w in 1 2; do
  step "worker $w: chelsio-vf list"
  "$CVF" emulate exec --name "$NAME" --worker "$w" -- "$CVF" list
done

step "emulate status"
"$CVF" emulate status --name "$NAME"
