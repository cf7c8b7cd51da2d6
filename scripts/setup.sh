#!/usr/bin/env bash
# Installs what building and testing loopwatch needs, and only what is missing. Idempotent:
# every step checks the exact version first. Usage: scripts/setup.sh [build|test]
#   build: wasm target, cargo-leptos, wasm-bindgen-cli, wasm-opt (enough for `demo`)
#   test:  all of build, plus Debian's chromium, redis-server and the end2end npm packages
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODE="${1:-test}"
CARGO_LEPTOS_VERSION="0.3.10" # 0.3.11 needs a newer rustc than this project's 1.95
WASM_BINDGEN_VERSION="$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' "$ROOT/Cargo.lock")"

say() { printf '[setup %(%H:%M:%S)T] %s\n' -1 "$*"; }
fail() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

case "$MODE" in build|test) ;; *) fail "usage: scripts/setup.sh [build|test]" ;; esac
[[ -n "$WASM_BINDGEN_VERSION" ]] || fail "cannot read the wasm-bindgen version from Cargo.lock"

export PATH="$HOME/.cargo/bin:$ROOT/scripts/node_modules/.bin:$PATH"
have cargo || fail "cargo is missing: install Rust with rustup (https://rustup.rs), then run this again"
have rustup || fail "rustup is missing: the wasm32-unknown-unknown target is installed with rustup"

if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "wasm32-unknown-unknown target: present"
else
  say "installing the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown || fail "could not add the wasm32-unknown-unknown target"
fi

if cargo leptos --version 2>/dev/null | grep -q " $CARGO_LEPTOS_VERSION\$"; then
  say "cargo-leptos $CARGO_LEPTOS_VERSION: present"
else
  say "installing cargo-leptos $CARGO_LEPTOS_VERSION (about 25 minutes on 2 cores; output in /tmp/loopwatch-cargo-leptos.log)"
  # no_downloads: a missing tool fails with its name instead of a download attempt.
  cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --features no_downloads \
    >/tmp/loopwatch-cargo-leptos.log 2>&1 \
    || { tail -30 /tmp/loopwatch-cargo-leptos.log >&2; fail "cargo-leptos $CARGO_LEPTOS_VERSION did not install"; }
fi

if wasm-bindgen --version 2>/dev/null | grep -q " $WASM_BINDGEN_VERSION\$"; then
  say "wasm-bindgen-cli $WASM_BINDGEN_VERSION: present"
else
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION, the version in Cargo.lock (about 5 minutes)"
  # Not --locked: its own lock file pins crates that no longer build with this toolchain.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force \
    >/tmp/loopwatch-wasm-bindgen.log 2>&1 \
    || { tail -30 /tmp/loopwatch-wasm-bindgen.log >&2; fail "wasm-bindgen-cli $WASM_BINDGEN_VERSION did not install"; }
fi

have npm || fail "npm is missing: install Node.js 18 or newer (Debian: apt-get install nodejs npm)"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
npm_install() { # dir, what
  local dir="$1"
  if [[ -d "$dir/node_modules" ]] && (cd "$dir" && npm ls --depth=0 >/dev/null 2>&1); then
    say "$2: present"
  else
    say "installing $2 (npm ci in ${dir#"$ROOT"/})"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci failed in $dir"
  fi
}
npm_install "$ROOT/scripts" "wasm-opt (npm package binaryen, for release builds)"
have wasm-opt || fail "wasm-opt is not on PATH after installing binaryen"

if [[ "$MODE" == test ]]; then
  if [[ -x /usr/bin/chromium ]]; then
    say "chromium: present ($(/usr/bin/chromium --version 2>/dev/null | head -1))"
  else
    say "installing Debian's chromium (for the browser tests)"
    SUDO=""
    if [[ "$(id -u)" != 0 ]]; then have sudo && SUDO="sudo" || fail "chromium is missing and installing it needs root: apt-get install chromium"; fi
    $SUDO apt-get update -qq || fail "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null || fail "apt-get install chromium failed"
    [[ -x /usr/bin/chromium ]] || fail "chromium installed but /usr/bin/chromium is missing"
  fi
  npm_install "$ROOT/end2end" "Playwright (end2end npm packages; no browser download)"
  # The engine for the cluster tests and `demo.sh --cluster`: tests start their own servers, so
  # the system service is not started here.
  if have redis-server; then
    say "redis-server: present ($(redis-server --version 2>/dev/null | head -1))"
  else
    say "installing Debian's redis-server (for the cluster tests)"
    SUDO=""
    if [[ "$(id -u)" != 0 ]]; then have sudo && SUDO="sudo" || fail "redis-server is missing and installing it needs root: apt-get install redis-server"; fi
    $SUDO apt-get update -qq || fail "apt-get update failed"
    # policy-rc.d 101 keeps the package from starting the system service on install.
    POLICY=/usr/sbin/policy-rc.d
    ADDED_POLICY=""
    if [[ ! -e "$POLICY" ]]; then
      printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null && $SUDO chmod +x "$POLICY" && ADDED_POLICY=1
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null \
      || { [[ -n "$ADDED_POLICY" ]] && $SUDO rm -f "$POLICY"; fail "apt-get install redis-server failed"; }
    [[ -n "$ADDED_POLICY" ]] && $SUDO rm -f "$POLICY"
    have redis-server || fail "redis-server installed but not on PATH"
  fi
fi
say "toolchain ready"
