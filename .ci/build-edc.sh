#!/usr/bin/env bash
# Build the EDC connector runtimes (0.15.1 and 0.18.0, with this project's extensions) with Maven
# from the EDC source bundles, into a cache outside the repository:
#
#   $WORKFLOW_EDC_CACHE/src/{Connector,Runtime-Metamodel}.git   bare clones of the bundles
#   $WORKFLOW_EDC_CACHE/runtimes/<version>/lib/*.jar             the runtime classpath
#   $WORKFLOW_EDC_CACHE/runtimes/<version>/stamp                 what it was built from
#
# (default ~/.cache/workflow-middle-layer/edc). Maven's local repository stays in ~/.m2. A runtime
# whose stamp matches (hash of edc-config/'s build files and extension sources + the bundle's tag
# trees) is not rebuilt, so a warm run takes a second. The unit tests of the extensions run in the
# same Maven build (Surefire). Prints the runtimes directory.
#
#   build-edc.sh [version...]        (default: 0.15.1 0.18.0; the EDC image builds one)
#
# Environment: WORKFLOW_EDC_CACHE; EDC_SOURCE_BUNDLES (directory with Connector.bundle and
# Runtime-Metamodel.bundle, default ../shared/edc-sources beside the repository). The bundles are
# the only source of EDC code: no network but Maven's repository (~/.m2 or Maven Central).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${WORKFLOW_EDC_CACHE:-$HOME/.cache/workflow-middle-layer/edc}"
BUNDLES="${EDC_SOURCE_BUNDLES:-$repo/../shared/edc-sources}"
if [ "$#" -gt 0 ]; then VERSIONS=("$@"); else VERSIONS=(0.15.1 0.18.0); fi
log() { printf '[build-edc] %s\n' "$*" >&2; }
mkdir -p "$CACHE/src" "$CACHE/runtimes"

# Bare clones of the bundles (read-only build input); refreshed when a bundle is newer.
for name in Connector Runtime-Metamodel; do
  bundle="$BUNDLES/$name.bundle" dest="$CACHE/src/$name.git"
  if [ -f "$bundle" ] && { [ ! -e "$dest/HEAD" ] || [ "$bundle" -nt "$dest/HEAD" ]; }; then
    rm -rf "$dest"
    git clone --quiet --bare "$bundle" "$dest"
    touch "$dest/HEAD"
  fi
  if [ ! -e "$dest/HEAD" ]; then
    log "no $name.bundle in $BUNDLES (set EDC_SOURCE_BUNDLES)"
    exit 1
  fi
  var="EDC_$(echo "$name" | tr 'a-z-' 'A-Z_')_GIT"
  export "$var=$dest"
done

# What a runtime is built from: edc-config's build inputs and the tag trees of the sources.
stamp_of() {
  local version="$1" trees=""
  for var in EDC_CONNECTOR_GIT EDC_RUNTIME_METAMODEL_GIT; do
    trees+="$(git --git-dir="${!var}" rev-parse "v$version^{tree}") "
  done
  {
    echo "$trees"
    cd "$repo/edc-config"
    local inputs=(pom.xml runtimes/fetch-sources.sh "runtimes/$version" extensions/common)
    [ -d "extensions/$version" ] && inputs+=("extensions/$version")
    find "${inputs[@]}" -type f -not -path '*/target/*' | LC_ALL=C sort | xargs sha256sum
  } | sha256sum | cut -d' ' -f1
}

stale=()
for version in "${VERSIONS[@]}"; do
  out="$CACHE/runtimes/$version"
  if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$(stamp_of "$version")" ] && [ -d "$out/lib" ]; then
    log "$version: up to date"
  else
    stale+=("$version")
  fi
done

if [ "${#stale[@]}" -gt 0 ]; then
  start=$(date +%s)
  modules=""
  for version in "${stale[@]}"; do modules+="runtimes/$version,"; [ -d "$repo/edc-config/extensions/$version" ] && modules+="extensions/$version,"; done
  log "building ${stale[*]} (mvn -pl ${modules%,})"
  # The reactor builds each runtime before its extension module (which adds its jar to the lib).
  # Errors, warnings and Surefire's test counts only (the extensions' unit tests run here).
  mvn -B -ntp -f "$repo/edc-config/pom.xml" -pl "${modules%,}" package \
    | grep -E '^\[(ERROR|WARNING)\]|Tests run:|BUILD (SUCCESS|FAILURE)' >&2
  for version in "${stale[@]}"; do
    out="$CACHE/runtimes/$version"
    rm -rf "$out.tmp" && mkdir -p "$out.tmp"
    cp -r "$repo/edc-config/runtimes/$version/target/lib" "$out.tmp/lib"
    stamp_of "$version" >"$out.tmp/stamp"
    rm -rf "$out" && mv "$out.tmp" "$out"
  done
  log "built ${stale[*]} in $(($(date +%s) - start)) s (load: $(cut -d' ' -f1-3 /proc/loadavg))"
fi

# One okhttp major on each classpath (okhttp 4 next to okhttp-jvm 5 breaks EDC's HTTP client).
for version in "${VERSIONS[@]}"; do
  if find "$CACHE/runtimes/$version/lib" -name 'okhttp-4.*.jar' | grep -q .; then
    log "$version: okhttp 4 on the classpath next to okhttp 5"
    exit 1
  fi
done
echo "$CACHE/runtimes"
