#!/usr/bin/env bash
# Extracts the main sources of EDC modules that are NOT on Maven Central for an EDC version into
# runtimes/<version>/target/edc-src/{java,resources} (META-INF/services files are concatenated), where the
# runtime pom compiles them into one jar, target/lib/edc-unpublished-modules-<version>.jar.
#
#   fetch-sources.sh <version> <modules-file>
#
# <modules-file>: one "<repo> <module path>" per line (repo = Connector | Runtime-Metamodel, github eclipse-edc/<repo>),
# '#' comments allowed. Sources are read from tag v<version> of the git clone given by $EDC_CONNECTOR_GIT /
# $EDC_RUNTIME_METAMODEL_GIT: clones of the EDC source bundles, made by .ci/build-edc.sh (no network access here).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="$1"; modfile="$2"; tag="v${version}"
out="$here/$version/target/edc-src"
rm -rf "$out"; mkdir -p "$out/java" "$out/resources"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT

gitdir_for() {  # repo name -> git dir that has $tag
  local repo="$1" var dir
  var="EDC_$(echo "$repo" | tr 'a-z-' 'A-Z_')_GIT"
  dir="${!var:-}"
  if [[ -z "$dir" ]]; then
    echo "fetch-sources.sh: $var is not set (run .ci/build-edc.sh, which clones the EDC source bundles)" >&2
    exit 1
  fi
  git -C "$dir" rev-parse --absolute-git-dir
}

n=0
while read -r repo m; do
  [[ -z "${repo:-}" || "$repo" == \#* ]] && continue
  gd="$(gitdir_for "$repo")"
  git --git-dir="$gd" ls-tree -d "$tag" "$m/src/main" | grep -q . || continue   # e.g. BOMs: no sources
  git --git-dir="$gd" archive "$tag" "$m/src/main" | tar -x -C "$tmp"
  [[ -d "$tmp/$m/src/main/java" ]] && cp -r "$tmp/$m/src/main/java/." "$out/java/"
  if [[ -d "$tmp/$m/src/main/resources" ]]; then
    while read -r f; do
      mkdir -p "$out/resources/$(dirname "$f")"
      if [[ "$f" == ./META-INF/services/* ]]; then
        { cat "$tmp/$m/src/main/resources/$f"; echo; } >> "$out/resources/$f"
      elif [[ -e "$out/resources/$f" ]]; then
        echo "resource clash: $f ($m)" >&2; exit 1
      else
        cp "$tmp/$m/src/main/resources/$f" "$out/resources/$f"
      fi
    done < <(cd "$tmp/$m/src/main/resources" && find . -type f)
  fi
  n=$((n+1))
done < "$modfile"
echo "extracted $n modules ($(find "$out/java" -name '*.java' | wc -l) java files) from $tag into $out"
