#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD_DIR for SECONDS each, starting from its seed corpus
# (tests/fuzz/corpus/<target>/ when present). Fails on the first crash, leak or timeout.
set -euo pipefail
build_dir=$1
seconds=${2:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
found=0
for bin in "$build_dir"/fuzz_*; do
    [ -x "$bin" ] || continue
    found=1
    name=$(basename "$bin")
    work=$(mktemp -d)
    seeds="$root/tests/fuzz/corpus/$name"
    [ -d "$seeds" ] && cp -r "$seeds"/. "$work"/
    echo "fuzz: $name for ${seconds}s"
    if ! "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
        -artifact_prefix="$build_dir/$name-" "$work" >"$build_dir/$name.log" 2>&1; then
        tail -n 40 "$build_dir/$name.log"
        rm -rf "$work"
        echo "fuzz: $name FAILED (artifact and log in $build_dir)" >&2
        exit 1
    fi
    grep -E '^(#[0-9]+\s+DONE|Done)' "$build_dir/$name.log" | tail -n 1 || true
    rm -rf "$work"
done
[ "$found" -eq 1 ] || { echo "fuzz: no targets in $build_dir" >&2; exit 1; }
