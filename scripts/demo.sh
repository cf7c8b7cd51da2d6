#!/usr/bin/env bash
# Installs what is missing, builds the release binary, and runs loopwatch on demo projects whose
# simulated loops write real files. Extra arguments go to `loopwatch demo` (try --help).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$ROOT/scripts/node_modules/.bin:$PATH"
BIN=target/release/loopwatch
# cargo-leptos regenerates the site on every build, and the server embeds it, so it would rebuild
# everything each time: skip the tools and the build when the last build matches the sources.
if scripts/build-stamp.sh check; then
  echo "==> the release binary is up to date"
else
  scripts/setup.sh build
  echo "==> building the release binary (first build: about 10 minutes on 2 cores)"
  # Hashed before the build: a file edited while it runs is not in this binary.
  sources="$(scripts/build-stamp.sh sources)"
  cargo leptos build --release --precompress
  BUILD_SOURCES="$sources" scripts/build-stamp.sh write
fi
echo "==> open the address printed below; stop with Ctrl-C"
exec "$BIN" demo "$@"
