#!/usr/bin/env bash
# Build the other real servers and tools the tests run, from the Go module proxy:
#   helm   the real Helm (render + lint the chart in helm/)
#   minio  the real MinIO server (S3 tests: signatures, presigned-URL expiry, per-consumer policies)
#
# Binaries go to $WORKFLOW_TOOLS_CACHE/bin (default ~/.cache/workflow-middle-layer/tools/bin) with
# a stamp each; the Go module and build caches are shared with .ci/build-kubernetes.sh. A binary
# whose stamp matches the wanted version is not rebuilt. Prints the bin directory.
#
# MinIO: the repository is archived and source-only (AGPLv3); it is built as a test fixture and
# nothing of it is shipped. The pinned pseudo-version is what `@latest` resolved to on 2026-11-22.
#
# Environment: WORKFLOW_TOOLS_CACHE, WORKFLOW_K8S_CACHE, HELM_VERSION, MINIO_VERSION, BUILD_JOBS.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-3.19.0}"
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
BUILD_JOBS="${BUILD_JOBS:-2}"
BIN="${WORKFLOW_TOOLS_CACHE:-$HOME/.cache/workflow-middle-layer/tools}/bin"
GO_CACHE="${WORKFLOW_K8S_CACHE:-$HOME/.cache/workflow-middle-layer/kubernetes}/go"
LOG_PREFIX=build-tools
# shellcheck source=.ci/go-build.sh
source "$(dirname "$0")/go-build.sh"

install_into_bin() {
  GOBIN="$BIN" go install -trimpath -ldflags "-s -w $2" "$1"
}

timed helm "helm v$HELM_VERSION" install_into_bin "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION" \
  "-X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION"
timed minio "minio $MINIO_VERSION" install_into_bin "github.com/minio/minio@$MINIO_VERSION" ""

"$BIN/helm" version --short >&2
echo "$BIN"
