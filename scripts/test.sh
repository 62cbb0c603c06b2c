#!/usr/bin/env bash
# The project's test command: installs what the tests need, then checks
# formatting and lints and runs every test of the workspace.
set -euo pipefail

usage() { echo "usage: scripts/test.sh [extra arguments for cargo test]"; }
case "${1:-}" in -h|--help) usage; exit 0 ;; esac

cd "$(dirname "$0")/.."
scripts/install-deps.sh
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
shellcheck scripts/*.sh
cargo test --workspace "$@"
