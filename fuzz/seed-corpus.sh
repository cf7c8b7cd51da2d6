#!/bin/sh
# Copies the test fixtures (../tests/fixtures/*) into the corpus directories as seeds.
# Usage: ./seed-corpus.sh [CORPUS_ROOT]   (default: corpus; files are named after the fixture)
set -eu
cd "$(dirname "$0")"
root="${1:-corpus}"
mkdir -p "$root/log" "$root/jsonl" "$root/plan" "$root/notification"
for fixture in ../tests/fixtures/*/; do
    name=$(basename "$fixture")
    copy() { if [ -f "$1" ]; then cp "$1" "$2"; fi; }
    copy "$fixture.ralph/ralph.log" "$root/log/seed-$name"
    copy "$fixture.ralph/iterations.jsonl" "$root/jsonl/seed-$name"
    copy "$fixture.ralph/pending-notification.txt" "$root/notification/seed-$name"
    copy "${fixture}IMPLEMENTATION_PLAN.md" "$root/plan/seed-$name"
done
