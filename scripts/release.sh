#!/usr/bin/env bash
# The steps of make release and make image-archive, each named on the command line:
#   check      refuse a VERSION or TAG that cannot name a directory and an image tag
#   manifests  $OUT/chelsio-sriov.yaml: deployments/ rendered by kustomize with the
#              image set to $IMAGE:$TAG (kubectl kustomize, else kustomize, else
#              kustomize from the Go module proxy)
#   sums       $OUT/SHA256SUMS of every file in $OUT
#   archive    $OUT/chelsio-sriov-image.tar: $IMAGE:$TAG saved by $CONTAINER_TOOL, for
#              ctr -n k8s.io images import on a node that reaches no registry
# make passes VERSION, TAG, IMAGE, OUT, GO and CONTAINER_TOOL.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
KUSTOMIZE_MODULE=sigs.k8s.io/kustomize/kustomize/v5@v5.7.1

die() { echo "release: $*" >&2; exit 1; }

# An image tag: what the OCI distribution spec allows, which is also a safe file name.
check() {
  local re='^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$'
  [[ ${VERSION:-} =~ $re ]] || die "VERSION \"${VERSION:-}\" is not a usable version: give letters, digits, '.', '_' and '-' (e.g. VERSION=v1.2.0)"
  [[ ${TAG:-} =~ $re ]] || die "TAG \"${TAG:-}\" is not an image tag: give letters, digits, '.', '_' and '-'"
  local last=${IMAGE##*/}
  [[ -n ${IMAGE:-} && $IMAGE != *[[:space:]@]* && $last != *:* ]] || die "IMAGE \"${IMAGE:-}\" must be a repository without a tag or digest (e.g. ghcr.io/chelsio-k8s/chelsio-sriov)"
}

kustomize_build() {
  if command -v kubectl >/dev/null; then
    kubectl kustomize "$1"
  elif command -v kustomize >/dev/null; then
    kustomize build "$1"
  else
    "$GO" run "$KUSTOMIZE_MODULE" build "$1"
  fi
}

manifests() {
  # The base names its image chelsio-sriov and sets it to newName:<version>; an
  # overlay sets that name's tag (kustomize refuses an absolute path to a base).
  local base overlay
  base=$(awk '/^images:/ {in_images = 1} in_images && /- name: chelsio-sriov$/ {found = 1; next} found && /newName:/ {print $2; exit}' deployments/kustomization.yaml)
  [ -n "$base" ] || die "deployments/kustomization.yaml sets no newName for the image chelsio-sriov"
  overlay=$(mktemp -d)
  trap 'rm -rf "$overlay"' RETURN
  cat >"$overlay/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $(realpath --relative-to="$overlay" deployments)
images:
  - name: $base
    newName: $IMAGE
    newTag: $TAG
YAML
  mkdir -p "$OUT"
  kustomize_build "$overlay" >"$OUT/chelsio-sriov.yaml"
  if grep -n 'image:' "$OUT/chelsio-sriov.yaml" | grep -v "image: $IMAGE:$TAG\$"; then
    die "the images above in $OUT/chelsio-sriov.yaml are not $IMAGE:$TAG"
  fi
  echo "wrote $OUT/chelsio-sriov.yaml"
}

sums() {
  (cd "$OUT" && find . -maxdepth 1 -type f ! -name 'SHA256SUMS*' ! -name '.*' -printf '%f\n' | LC_ALL=C sort | xargs sha256sum >SHA256SUMS.new && mv SHA256SUMS.new SHA256SUMS)
  echo "wrote $OUT/SHA256SUMS"
}

archive() {
  [ -n "${CONTAINER_TOOL:-}" ] || die "no buildah, podman or docker on PATH (or give CONTAINER_TOOL=)"
  local file="$OUT/chelsio-sriov-image.tar"
  mkdir -p "$OUT"
  rm -f "$file"
  case $(basename "${CONTAINER_TOOL%% *}") in
    buildah) $CONTAINER_TOOL push "$IMAGE:$TAG" "docker-archive:$file:$IMAGE:$TAG" ;;
    podman) $CONTAINER_TOOL save --format docker-archive -o "$file" "$IMAGE:$TAG" ;;
    *) $CONTAINER_TOOL save -o "$file" "$IMAGE:$TAG" ;;
  esac
  echo "wrote $file: on each node, ctr -n k8s.io images import $(basename "$file")"
}

[ $# -gt 0 ] || die "say which steps: check, manifests, sums, archive"
for step in "$@"; do
  case $step in
    check | manifests | sums | archive) "$step" ;;
    *) die "unknown step \"$step\"" ;;
  esac
done
