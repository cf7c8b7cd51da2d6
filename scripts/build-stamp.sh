#!/usr/bin/env bash
# Whether the release build in ROOT/target is current, without asking cargo-leptos (which
# regenerates the site on every call, and the server embeds the site, so it rebuilds everything).
#   scripts/build-stamp.sh check [ROOT]  exit 0 when no rebuild is needed, 1 otherwise
#   scripts/build-stamp.sh write [ROOT]  record that the release build matches the sources now
# Current means: the binary and the site exist, and either no input is newer than the binary, or
# the inputs hash to what they hashed to when the build was recorded (a checkout or a `touch`
# changes modification times, not contents).
set -euo pipefail

MODE="${1:-}"
ROOT="$(cd "${2:-$(dirname "${BASH_SOURCE[0]}")/..}" && pwd)"
cd "$ROOT"
BIN=target/release/loopwatch
SITE=target/site/pkg/loopwatch.wasm
STAMP=target/release/.loopwatch-build-stamp
INPUTS=(src front style public build.rs Cargo.toml Cargo.lock Leptos.toml)

existing_inputs() {
  local input
  for input in "${INPUTS[@]}"; do
    [[ -e "$input" ]] && printf '%s\n' "$input"
  done
  return 0
}

# One line naming the inputs' contents and the binary they built.
fingerprint() {
  local inputs
  mapfile -t inputs < <(existing_inputs)
  local sources
  sources="$(find "${inputs[@]}" -type f -not -path 'front/target/*' -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
  printf '%s %s\n' "$sources" "$(stat -c '%s %Y' "$BIN")"
}

built() { [[ -x "$BIN" && -f "$SITE" ]]; }

nothing_newer() {
  local inputs
  mapfile -t inputs < <(existing_inputs)
  [[ -z "$(find "${inputs[@]}" -newer "$BIN" -print -quit)" ]]
}

case "$MODE" in
  check)
    built || exit 1
    if nothing_newer; then
      # Remember these contents, so a later touch without a change is still current.
      fingerprint > "$STAMP"
      exit 0
    fi
    [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(fingerprint)" ]]
    ;;
  write)
    built || { echo "build-stamp: no release binary or site to record" >&2; exit 1; }
    fingerprint > "$STAMP"
    ;;
  *)
    echo "usage: scripts/build-stamp.sh check|write [ROOT]" >&2
    exit 2
    ;;
esac
