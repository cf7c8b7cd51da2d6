#!/usr/bin/env bash
# Installs what is missing, builds the release binary, and runs loopwatch on demo projects whose
# simulated loops write real files. Extra arguments go to `loopwatch demo` (try --help).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$ROOT/scripts/node_modules/.bin:$PATH"
scripts/setup.sh build
BIN=target/release/loopwatch
# cargo-leptos regenerates the site on every build, and the server embeds it, so it would rebuild
# everything each time: skip the build when no input is newer than the binary.
if [[ -x "$BIN" && -z "$(find src front style public Cargo.toml Cargo.lock Leptos.toml -newer "$BIN" -print -quit)" ]]; then
  echo "==> the release binary is up to date"
else
  echo "==> building the release binary (first build: about 10 minutes on 2 cores)"
  cargo leptos build --release --precompress
fi
echo "==> open the address printed below; stop with Ctrl-C"
exec "$BIN" demo "$@"
