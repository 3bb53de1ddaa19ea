#!/usr/bin/env bash
# Build the OGC CITE executable test suite for OGC API - Processes - Part 1 (ets-ogcapi-processes10,
# tag 1.3) with Maven from the git bundle in ../shared/ogc, into a cache outside the repository:
#
#   $WORKFLOW_OGC_CACHE/ets-ogcapi-processes10-1.3-aio.jar   the runnable suite (all dependencies)
#   $WORKFLOW_OGC_CACHE/ets-ogcapi-processes10-1.3-aio.stamp  the tag's tree it was built from
#
# (default ~/.cache/workflow-middle-layer/ogc). A jar whose stamp matches is not rebuilt (warm: a
# second; cold: ~2 min with an empty ~/.m2). The enforcer is skipped: the suite's parent asks for
# Maven >= 3.9, and 3.8 builds it unchanged. Its buildnumber plugin reads git history, so the build
# runs in a clone, not an exported tree. Prints the jar's path.
#
# Environment: WORKFLOW_OGC_CACHE; OGC_SOURCES (directory with ets-ogcapi-processes10.bundle,
# default ../shared/ogc beside the repository).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${WORKFLOW_OGC_CACHE:-$HOME/.cache/workflow-middle-layer/ogc}"
SOURCES="${OGC_SOURCES:-$repo/../shared/ogc}"
TAG=1.3
NAME="ets-ogcapi-processes10-$TAG-aio"
log() { printf '[build-ogc-ets] %s\n' "$*" >&2; }

bundle="$SOURCES/ets-ogcapi-processes10.bundle"
if [ ! -f "$bundle" ]; then
  log "no ets-ogcapi-processes10.bundle in $SOURCES (set OGC_SOURCES)"
  exit 1
fi
mkdir -p "$CACHE"
stamp="$(git bundle list-heads "$bundle" "refs/tags/$TAG" | cut -d' ' -f1)"
if [ -z "$stamp" ]; then
  log "the bundle has no tag $TAG"
  exit 1
fi
if [ -f "$CACHE/$NAME.jar" ] && [ "$(cat "$CACHE/$NAME.stamp" 2>/dev/null)" = "$stamp" ]; then
  log "up to date ($stamp)"
  echo "$CACHE/$NAME.jar"
  exit 0
fi

start=$(date +%s)
work="$(mktemp -d "$CACHE/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
git clone --quiet "$bundle" "$work/src" 2>/dev/null
git -C "$work/src" checkout --quiet "$TAG"
(cd "$work/src" && mvn -B -q -DskipTests -Denforcer.skip=true package >"$work/maven.log" 2>&1) || {
  tail -n 40 "$work/maven.log" >&2
  log "maven failed"
  exit 1
}
install -m 0644 "$work/src/target/$NAME.jar" "$CACHE/$NAME.jar"
printf '%s\n' "$stamp" >"$CACHE/$NAME.stamp"
log "built $NAME.jar in $(( $(date +%s) - start )) s"
echo "$CACHE/$NAME.jar"
