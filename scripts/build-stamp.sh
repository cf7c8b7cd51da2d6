#!/usr/bin/env bash
# Whether the release build in ROOT/target is current, without asking cargo-leptos (which
# regenerates the site on every call, and the server embeds the site, so it rebuilds everything).
#   scripts/build-stamp.sh sources [ROOT]  print the hash of the build's inputs (before a build)
#   scripts/build-stamp.sh write [ROOT]    record that the binary was built from $BUILD_SOURCES
#                                          (a hash printed by `sources`; the inputs now if unset)
#   scripts/build-stamp.sh check [ROOT]    exit 0 when no rebuild is needed, 1 otherwise
# The stamp names the inputs' hash and the binary it built: a checkout or a `touch` changes
# modification times, not contents, and a file edited while a build ran is not in its binary.
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

sources() {
  local inputs
  mapfile -t inputs < <(existing_inputs)
  find "${inputs[@]}" -type f -not -path 'front/target/*' -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}

binary() { stat -c '%s %Y' "$BIN"; }

built() { [[ -x "$BIN" && -f "$SITE" ]]; }

nothing_newer() {
  local inputs
  mapfile -t inputs < <(existing_inputs)
  [[ -z "$(find "${inputs[@]}" -newer "$BIN" -print -quit)" ]]
}

case "$MODE" in
  sources)
    sources
    ;;
  write)
    built || { echo "build-stamp: no release binary or site to record" >&2; exit 1; }
    printf '%s %s\n' "${BUILD_SOURCES:-$(sources)}" "$(binary)" > "$STAMP"
    ;;
  check)
    built || exit 1
    if [[ -f "$STAMP" ]]; then
      read -r stamped_sources stamped_binary < <(cut -d' ' -f1,2- "$STAMP")
      if [[ "$stamped_binary" == "$(binary)" ]]; then
        [[ "$stamped_sources" == "$(sources)" ]]
        exit
      fi
    fi
    # A binary built without this script (no stamp, or another binary since): trust the
    # modification times, and remember the contents they vouch for.
    nothing_newer || exit 1
    printf '%s %s\n' "$(sources)" "$(binary)" > "$STAMP"
    ;;
  *)
    echo "usage: scripts/build-stamp.sh sources|write|check [ROOT]" >&2
    exit 2
    ;;
esac
