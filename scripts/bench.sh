#!/usr/bin/env bash
# The benchmark (issue #6): a release server pinned to CPU 0, WebSocket clients, a file writer and
# an HTTP client on CPU 1; prints a table of medians and writes the raw figures to
# target/bench/bench.json. Usage: scripts/bench.sh [--lint] [--smoke] [more loopwatch-bench options]
#   --smoke   tiny sizes, one run each (what CI runs: it checks that the benchmark runs, not its numbers)
#   --lint    first check the bench crate's formatting and clippy (-D warnings)
# Builds target/release/loopwatch only if it is missing; the bench crate (bench/) has its own lock
# file and target directory and never touches the main build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$ROOT/scripts/node_modules/.bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if [[ ! -x target/release/loopwatch ]]; then
  echo "==> target/release/loopwatch is missing: building it (cargo leptos build --release --precompress)"
  scripts/setup.sh build
  cargo leptos build --release --precompress
fi

LINT=0
ARGS=()
for arg in "$@"; do
  if [[ "$arg" == --lint ]]; then LINT=1; else ARGS+=("$arg"); fi
done
if [[ "$LINT" == 1 ]]; then
  echo "==> bench crate: cargo fmt --check, cargo clippy -D warnings"
  cargo fmt --check --manifest-path bench/Cargo.toml
  cargo clippy --release --locked --manifest-path bench/Cargo.toml --target-dir bench/target --all-targets -- -D warnings
fi

echo "==> building the benchmark (cargo build --release --manifest-path bench/Cargo.toml)"
cargo build --release --locked --manifest-path bench/Cargo.toml --target-dir bench/target

echo "==> running it"
exec bench/target/release/loopwatch-bench "${ARGS[@]}"
