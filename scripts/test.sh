#!/usr/bin/env bash
# Installs what is missing, then runs every check and test: formatting, clippy for both features,
# the Rust tests, the one-binary release build, and the browser tests in Debian's Chromium.
# Prints how long each phase took.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$ROOT/scripts/node_modules/.bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
LOG_DIR="$ROOT/target/test-logs"
mkdir -p "$LOG_DIR"

TIMINGS=()
phase() { # name, command...
  local name="$1"; shift
  local start=$SECONDS
  printf '\n==> [%(%H:%M:%S)T] %s\n' -1 "$name"
  "$@"
  TIMINGS+=("$(printf '%-22s %5ss' "$name" "$((SECONDS - start))")")
}

rust_tests() {
  # One test at a time: most integration tests start a whole server in their own runtime, and
  # with several of them rendering pages in one process at once, a page render now and then
  # never completed (about 1 run in 16 of tests/security_gate.rs with 4 threads; none in 80
  # runs with 1). The binary runs one server per process.
  cargo test --features ssr -- --test-threads=1 2>&1 | tee "$LOG_DIR/cargo-test.log"
}

release_build() {
  # --precompress builds the site before the server, so the server embeds the finished files.
  cargo leptos build --release --precompress
  local wasm="target/site/pkg/loopwatch.wasm"
  [[ -f target/release/loopwatch && -f "$wasm" ]] || { echo "release build produced no binary or wasm" >&2; return 1; }
  printf 'release binary: %s bytes\nwasm: %s bytes raw, %s bytes gzipped\n' \
    "$(stat -c %s target/release/loopwatch)" "$(stat -c %s "$wasm")" "$(gzip -9 -c "$wasm" | wc -c)"
  # Every precompressed file of the site's package (what browsers download: brotli when they can).
  local file
  for file in target/site/pkg/*.br; do
    if [[ -f "$file" ]]; then
      printf '%s: %s bytes brotli\n' "${file#target/site/pkg/}" "$(stat -c %s "$file")"
    fi
  done
}

browser_tests() {
  (cd end2end && npx playwright test)
}

phase "setup" scripts/setup.sh test
phase "fmt" cargo fmt --all --check
phase "layout" scripts/layout-check.sh
phase "clippy (ssr)" cargo clippy --features ssr --all-targets -- -D warnings
phase "clippy (hydrate)" cargo clippy --features hydrate --lib --target wasm32-unknown-unknown -- -D warnings
phase "clippy (front)" cargo clippy -p loopwatch-front --target wasm32-unknown-unknown -- -D warnings
phase "rust tests" rust_tests
phase "release build" release_build
phase "bench smoke" scripts/bench.sh --lint --smoke
phase "browser tests" browser_tests

rust_passed=$(awk '/^test result:/ {sum += $4} END {print sum + 0}' "$LOG_DIR/cargo-test.log")
browser_passed=$(node -e 'const r=require("./end2end/test-results/results.json"); console.log(r.stats.expected)')
printf '\n==> durations\n'
printf '  %s\n' "${TIMINGS[@]}"
printf 'rust tests: %s passed; browser tests: %s passed\n' "$rust_passed" "$browser_passed"
printf '%s passed, 0 failed\n' "$((rust_passed + browser_passed))"
