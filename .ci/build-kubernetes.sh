#!/usr/bin/env bash
# Build a local Kubernetes control plane for the tests in tests/cluster/ from the Go module proxy:
# kube-apiserver, kube-controller-manager, kube-scheduler, etcd, kwok and kwokctl.
#
# Everything goes to a cache directory OUTSIDE the repository, so CI can keep it between runs:
#   $WORKFLOW_K8S_CACHE/<kubernetes version>/bin/<binary>        the binaries (+ <binary>.stamp)
#   $WORKFLOW_K8S_CACHE/go/{mod,build}                          GOMODCACHE and GOCACHE
#   $WORKFLOW_K8S_CACHE/<kubernetes version>/src/{kubernetes,etcd}  the wrapper modules
# A binary whose stamp file matches the wanted version and build flags is not rebuilt.
#
# Only the Go module proxy is needed (no dl.k8s.io, no GitHub). See tests/cluster/BUILD-TIMES.md.
#
# Environment: WORKFLOW_K8S_CACHE, K8S_VERSION, ETCD_VERSION, KWOK_VERSION, BUILD_JOBS (go build -p).
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-3.6.5}"
KWOK_VERSION="${KWOK_VERSION:-0.8.0}"
CACHE="${WORKFLOW_K8S_CACHE:-$HOME/.cache/workflow-middle-layer/kubernetes}"
BUILD_JOBS="${BUILD_JOBS:-2}"

K8S_MINOR="$(echo "$K8S_VERSION" | cut -d. -f2)"
K8S_PATCH="$(echo "$K8S_VERSION" | cut -d. -f3)"
STAGING_VERSION="v0.${K8S_MINOR}.${K8S_PATCH}"
ROOT="$CACHE/v$K8S_VERSION"
BIN="$ROOT/bin"
mkdir -p "$ROOT/src"

GO_CACHE="$CACHE/go"
LOG_PREFIX=build-kubernetes
# shellcheck source=.ci/go-build.sh
source "$(dirname "$0")/go-build.sh"

# ---------------------------------------------------------------------------------------------
# Kubernetes: a wrapper module requiring k8s.io/kubernetes and replacing every staging module
# (required at v0.0.0 and replaced by ./staging/... upstream) with its published v0.MINOR.PATCH.
prepare_kubernetes_module() {
  local dir="$ROOT/src/kubernetes" gomod m start
  [ -f "$dir/.prepared" ] && return 0
  log "kubernetes: preparing wrapper module in $dir (module downloads)"
  start=$(date +%s)
  rm -rf "$dir" && mkdir -p "$dir"
  (
    cd "$dir"
    go mod init example.local/k8sbin >/dev/null 2>&1
    go mod edit -require="k8s.io/kubernetes@v$K8S_VERSION"
    gomod="$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
    for m in $(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$gomod" | sort -u); do
      go mod edit -replace="$m=$m@$STAGING_VERSION"
    done
    cat >tools.go <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
EOF
    go mod tidy
  )
  touch "$dir/.prepared"
  log "kubernetes: wrapper module ready in $(($(date +%s) - start)) s"
}

build_kubernetes() {
  local name="$1" info commit date ldflags pkg
  # The proxy's .info file has the tag's commit time (and, for recent fetches, the commit hash).
  info="$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Info"])')"
  commit="$(python3 -c 'import json,sys; print((json.load(sys.stdin).get("Origin") or {}).get("Hash", ""))' <"$info")"
  date="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["Time"][:19] + "Z")' <"$info")"
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$K8S_MINOR"
    ldflags+=" -X $pkg.gitCommit=$commit -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
  (cd "$ROOT/src/kubernetes" && go build -trimpath -ldflags "$ldflags" -o "$BIN/$name" "k8s.io/kubernetes/cmd/$name")
}

# ---------------------------------------------------------------------------------------------
# etcd: go.etcd.io/etcd/server/v3 also has local replace directives, so `go install` refuses it;
# a wrapper module that requires it (its sibling modules resolve at the same tag) builds fine.
build_etcd() {
  local dir="$ROOT/src/etcd"
  rm -rf "$dir" && mkdir -p "$dir"
  (
    cd "$dir"
    go mod init example.local/etcdbin >/dev/null 2>&1
    cat >tools.go <<'EOF'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
EOF
    go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
    go mod tidy
    go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
  )
}

# ---------------------------------------------------------------------------------------------
# kwok/kwokctl: no replace directives, `go install` works. The tagged source already carries its
# version (pkg/consts.Version = "0.8.0"), so no -X stamping is needed.
build_kwok() {
  GOBIN="$BIN" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/$1@v$KWOK_VERSION"
}

total_start=$(date +%s)
log "cache: $CACHE (GOMODCACHE and GOCACHE under $CACHE/go), binaries: $BIN"
log "versions: kubernetes v$K8S_VERSION (staging $STAGING_VERSION), etcd v$ETCD_VERSION, kwok v$KWOK_VERSION; go $(go env GOVERSION), -p=$BUILD_JOBS"

timed kwok "kwok v$KWOK_VERSION" build_kwok kwok
timed kwokctl "kwokctl v$KWOK_VERSION" build_kwok kwokctl
timed etcd "etcd v$ETCD_VERSION" build_etcd
for name in kube-apiserver kube-controller-manager kube-scheduler; do
  if ! up_to_date "$name" "$name v$K8S_VERSION"; then
    prepare_kubernetes_module
  fi
  timed "$name" "$name v$K8S_VERSION" build_kubernetes "$name"
done

log "done in $(($(date +%s) - total_start)) s"
for name in kube-apiserver kube-controller-manager kube-scheduler etcd kwok kwokctl; do
  printf '  %-24s %s\n' "$name" "$("$BIN/$name" --version 2>/dev/null | head -n1 || "$BIN/$name" version 2>/dev/null | head -n1)" >&2
done
echo "$BIN"
