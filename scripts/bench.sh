#!/usr/bin/env bash
# The benchmark (issue #6): a release server pinned to CPU 0, WebSocket clients, a file writer and
# an HTTP client on CPU 1; prints a table of medians and writes the raw figures to
# target/bench/bench.json. Usage: scripts/bench.sh [--lint] [--smoke] [--against REF] [more loopwatch-bench options]
#   --smoke        tiny sizes, one run each (what CI runs: it checks that the benchmark runs, not its numbers)
#   --lint         first check the bench crate's formatting and clippy (-D warnings)
#   --against REF  also benchmark REF (a commit, tag or branch), in the same run: each scenario
#                  group runs for both servers in turn (REF first on odd runs, this tree first on
#                  even ones), and the table gives each row for both and their ratio. This machine
#                  is noisy: ratios measured side by side are what hold, not figures from
#                  different days. REF's release build is cached in target/bench/ref-<sha>/ (its
#                  git worktree, binary and wasm; delete the directory to rebuild it). Building it
#                  shares ./target's third-party artefacts with this tree; the two loopwatch
#                  crates are rebuilt for REF, then again for this tree.
# Builds target/release/loopwatch only if it is missing; the bench crate (bench/) has its own lock
# file and target directory and never touches the main build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$ROOT/scripts/node_modules/.bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

LINT=0
AGAINST=""
SMOKE=0
RUNS=""
ONLY=""
ARGS=()
while (($#)); do
  case "$1" in
    --lint) LINT=1 ;;
    --against)
      [[ $# -ge 2 ]] || { echo "bench.sh: --against needs a commit" >&2; exit 2; }
      AGAINST="$2"; shift ;;
    --smoke) SMOKE=1; ARGS+=("$1") ;;
    --runs)
      [[ $# -ge 2 ]] || { echo "bench.sh: --runs needs a value" >&2; exit 2; }
      RUNS="$2"; ARGS+=("$1" "$2"); shift ;;
    --only)
      [[ $# -ge 2 ]] || { echo "bench.sh: --only needs a value" >&2; exit 2; }
      ONLY="$2"; ARGS+=("$1" "$2"); shift ;;
    *) ARGS+=("$1") ;;
  esac
  shift
done

build_release() { # in the current directory
  scripts/setup.sh build
  cargo leptos build --release --precompress
}

# Cargo keys a workspace crate's artefacts by its path inside the workspace, and their dep-info
# names the files of whichever tree built them last: REF's build would pass for this tree's (and
# the other way round). Forgetting the two loopwatch crates' artefacts makes the next build
# compile them from the tree it runs in.
forget_loopwatch_build() {
  cargo clean --release -p loopwatch --quiet
  cargo clean --profile wasm-release --target wasm32-unknown-unknown --target-dir target/front \
    -p loopwatch -p loopwatch-front --quiet
}

REF_DIR=""
if [[ -n "$AGAINST" ]]; then
  SHA="$(git rev-parse --verify --quiet "$AGAINST^{commit}")" \
    || { echo "bench.sh: --against $AGAINST: no such commit" >&2; exit 2; }
  REF_DIR="$ROOT/target/bench/ref-${SHA:0:12}"
  if [[ -x "$REF_DIR/loopwatch" && -f "$REF_DIR/loopwatch.wasm" ]]; then
    echo "==> $AGAINST (${SHA:0:12}): cached release build in ${REF_DIR#"$ROOT"/}"
  else
    echo "==> $AGAINST (${SHA:0:12}): release build in its worktree ${REF_DIR#"$ROOT"/}/src"
    mkdir -p "$REF_DIR"
    if [[ ! -d "$REF_DIR/src" ]]; then
      git worktree add --detach "$REF_DIR/src" "$SHA" >/dev/null
    fi
    [[ -e "$REF_DIR/src/scripts/node_modules" ]] || ln -s "$ROOT/scripts/node_modules" "$REF_DIR/src/scripts/node_modules"
    # The third-party artefacts in ./target are shared: only the two loopwatch crates rebuild.
    forget_loopwatch_build
    (cd "$REF_DIR/src" && export CARGO_TARGET_DIR="$ROOT/target" && build_release)
    cp "$ROOT/target/release/loopwatch" "$REF_DIR/loopwatch"
    for file in "$REF_DIR"/src/target/site/pkg/loopwatch.wasm*; do cp "$file" "$REF_DIR/"; done
    echo "==> this tree's release build again (REF's replaced it in ./target)"
    forget_loopwatch_build
    build_release
  fi
fi

if [[ ! -x target/release/loopwatch ]]; then
  echo "==> target/release/loopwatch is missing: building it (cargo leptos build --release --precompress)"
  build_release
fi

if [[ "$LINT" == 1 ]]; then
  echo "==> bench crate: cargo fmt --check, cargo clippy -D warnings"
  cargo fmt --check --manifest-path bench/Cargo.toml
  cargo clippy --release --locked --manifest-path bench/Cargo.toml --target-dir bench/target --all-targets -- -D warnings
fi

echo "==> building the benchmark (cargo build --release --manifest-path bench/Cargo.toml)"
cargo build --release --locked --manifest-path bench/Cargo.toml --target-dir bench/target
BENCH=bench/target/release/loopwatch-bench

if [[ -z "$AGAINST" ]]; then
  echo "==> running it"
  exec "$BENCH" "${ARGS[@]}"
fi

# Side by side: one run of one scenario group at a time, alternating the servers.
OUT="target/bench/against"
rm -rf "$OUT" && mkdir -p "$OUT"
RUNS="${RUNS:-$([[ "$SMOKE" == 1 ]] && echo 1 || echo 3)}"
# Without --runs and --only, which the loop sets per call.
PASS=()
skip=0
for arg in "${ARGS[@]}"; do
  if ((skip)); then skip=0; continue; fi
  case "$arg" in --runs|--only) skip=1 ;; *) PASS+=("$arg") ;; esac
done
wanted() { [[ -z "$ONLY" ]] || [[ ",$ONLY," == *",$1,"* ]]; }
GROUPS_=()
LIVE=()
for s in latency burst slow fanout; do wanted "$s" && LIVE+=("$s"); done
((${#LIVE[@]})) && GROUPS_+=("$(IFS=,; echo "${LIVE[*]}")")
for s in idle tail ssr wasm; do wanted "$s" && GROUPS_+=("$s"); done
HEAD_NAME="$(git rev-parse --short HEAD)$([[ -n "$(git status --porcelain --untracked-files=no)" ]] && echo "+changes")"
echo "==> $RUNS run(s) of ${GROUPS_[*]}: $AGAINST (${SHA:0:12}) and this tree ($HEAD_NAME), interleaved"
for ((run = 1; run <= RUNS; run++)); do
  for group in "${GROUPS_[@]}"; do
    sides=(ref head)
    ((run % 2 == 0)) && sides=(head ref)
    for side in "${sides[@]}"; do
      if [[ "$side" == ref ]]; then
        server="$REF_DIR/loopwatch"; wasm="$REF_DIR/loopwatch.wasm"
      else
        server="target/release/loopwatch"; wasm="target/site/pkg/loopwatch.wasm"
      fi
      echo "--> run $run, $group, $side"
      "$BENCH" "${PASS[@]}" --runs 1 --only "$group" --server "$server" --wasm "$wasm" \
        --out "$OUT/$side-$run-${group//,/-}.json" >/dev/null || echo "    ($side failed; its rows are FAILED)"
    done
  done
done
exec "$BENCH" compare --names "$AGAINST" "$HEAD_NAME" --ref "$OUT"/ref-*.json --head "$OUT"/head-*.json
