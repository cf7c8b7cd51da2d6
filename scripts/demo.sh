#!/usr/bin/env bash
# Installs what is missing, builds the release binary, and runs loopwatch on demo projects whose
# simulated loops write real files. Extra arguments go to `loopwatch demo` (try --help).
#   scripts/demo.sh --cluster: the same loops on the cluster engine instead: a redis-server, one
#   `loopwatch agent` watching the demo projects and two `loopwatch serve --redis` nodes.
set -euo pipefail
CLUSTER=""
if [[ "${1:-}" == "--cluster" ]]; then
  CLUSTER=1
  shift
  command -v redis-server >/dev/null || { echo "redis-server is missing: run scripts/setup.sh (it installs it)" >&2; exit 1; }
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$ROOT/scripts/node_modules/.bin:$PATH"
BIN=target/release/loopwatch
# cargo-leptos regenerates the site on every build, and the server embeds it, so it would rebuild
# everything each time: skip the tools and the build when the last build matches the sources.
if [[ -n "${LOOPWATCH_BIN:-}" ]]; then
  BIN="$LOOPWATCH_BIN" # a binary built elsewhere (tests, a debug build): nothing to build
elif scripts/build-stamp.sh check; then
  echo "==> the release binary is up to date"
else
  scripts/setup.sh build
  echo "==> building the release binary (first build: about 10 minutes on 2 cores)"
  # Hashed before the build: a file edited while it runs is not in this binary.
  sources="$(scripts/build-stamp.sh sources)"
  cargo leptos build --release --precompress
  BUILD_SOURCES="$sources" scripts/build-stamp.sh write
fi
if [[ -z "$CLUSTER" ]]; then
  echo "==> open the address printed below; stop with Ctrl-C"
  exec "$BIN" demo "$@"
fi

# The cluster: everything under one temporary directory, stopped together on exit.
WORK="$(mktemp -d -t loopwatch-cluster.XXXXXX)"
PIDS=()
stop() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap stop EXIT
trap 'exit 130' INT TERM
REDIS_PORT="${REDIS_PORT:-6399}"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
  >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
  sleep 0.1
done
redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG || { echo "redis-server did not start (see $WORK/redis.log)" >&2; exit 1; }
URL="redis://127.0.0.1:$REDIS_PORT"
echo "==> engine: $URL"
# The demo's simulated loops write the project files (its own single-process server runs too).
"$BIN" demo --dir "$WORK/projects" --addr 127.0.0.1:0 --data-dir "$WORK/single" "$@" >"$WORK/demo.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q "listening on" "$WORK/demo.log" 2>/dev/null && break; sleep 0.1; done
"$BIN" agent --redis "$URL" --projects "$WORK/projects" --name demo-agent >"$WORK/agent.log" 2>&1 &
PIDS+=($!)
# Both nodes share one data directory: a sign-in on one is valid on the other.
for node in a b; do
  "$BIN" serve --redis "$URL" --addr 127.0.0.1:0 --data-dir "$WORK/nodes" >"$WORK/node-$node.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q "listening on" "$WORK/node-$node.log" 2>/dev/null && break; sleep 0.1; done
  echo "==> node $node: $(grep -m1 -o 'http[s]*://[^ ]*' "$WORK/node-$node.log")"
done
grep -h "sign in" "$WORK"/node-*.log || true
echo "==> logs in $WORK; stop with Ctrl-C"
wait
