#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for SECONDS each (default 60) with
# cargo-fuzz and libFuzzer on the stable toolchain (--sanitizer none:
# coverage-guided, panics and failed assertions are the crashes). Reads the
# committed seeds in fuzz/seeds/TARGET, keeps what it finds in
# fuzz/corpus/TARGET (not committed), and exits non-zero on a crash, whose
# input lands in fuzz/artifacts/TARGET.
set -euo pipefail

usage() { echo "usage: scripts/fuzz.sh [SECONDS]   (each target runs SECONDS, default 60)"; }
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
secs="${1:-60}"
if ! [[ "$secs" =~ ^[1-9][0-9]*$ ]]; then
    usage >&2
    echo "SECONDS must be a positive whole number, got '$secs'" >&2
    exit 2
fi

cd "$(dirname "$0")/../fuzz"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz (a few minutes, once)" >&2
    cargo install cargo-fuzz --locked
fi

for target in $(cargo fuzz list); do
    mkdir -p "corpus/$target"
    echo "== $target: $secs s" >&2
    cargo fuzz run --sanitizer none -O "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$secs" -max_len=8192 -timeout=10 -print_final_stats=1
done
