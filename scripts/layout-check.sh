#!/usr/bin/env bash
# Checks the layout src/lib.rs describes: every `crate::`/`super::` path points down the data path
# (cli > site > app > live > api > server > model > contract, and inside server: stream > state,
# watcher > index > hub, project > the rest), and no file has more than 600 lines of code before
# its tests. The rules live in tests/layout.rs; this runs that test alone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo test --quiet --features ssr --test layout
