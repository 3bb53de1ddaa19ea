# Shared by the .ci/build-*.sh scripts (sourced, not run): the Go environment and the "build once,
# stamp, skip when the stamp matches" helpers. Expects BUILD_JOBS, GO_CACHE, BIN and LOG_PREFIX.
export GOMODCACHE="$GO_CACHE/mod"
export GOCACHE="$GO_CACHE/build"
export GOFLAGS="-p=$BUILD_JOBS -buildvcs=false -modcacherw"
export GOTOOLCHAIN=local
export CGO_ENABLED=0
export GOWORK=off
mkdir -p "$BIN" "$GOMODCACHE" "$GOCACHE"

log() { printf '[%s] %s\n' "$LOG_PREFIX" "$*" >&2; }

# up_to_date NAME STAMP: the binary exists and was built with exactly this stamp.
up_to_date() {
  [ -x "$BIN/$1" ] && [ -f "$BIN/$1.stamp" ] && [ "$(cat "$BIN/$1.stamp")" = "$2" ]
}

# timed NAME STAMP COMMAND...: run the build command unless up to date, then write the stamp.
timed() {
  local name="$1" stamp="$2" start end
  shift 2
  if up_to_date "$name" "$stamp"; then
    log "$name: up to date ($stamp)"
    return 0
  fi
  log "$name: building ($stamp)"
  start=$(date +%s)
  "$@"
  end=$(date +%s)
  printf '%s\n' "$stamp" >"$BIN/$name.stamp"
  log "$name: built in $((end - start)) s (load: $(cut -d' ' -f1-3 /proc/loadavg))"
}
