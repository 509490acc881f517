#!/usr/bin/env bash
# Checks the Python package on a machine with Rust and python3 (>= 3.9):
# lint of the crate (outside the Cargo workspace), `pip install` into a fresh
# venv exactly as a user does, the pytest suite, then the benchmark figures.
# Run from anywhere: `bash crates/ai-usage-py/ci.sh` (.ci/run calls it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== python venv with maturin and pytest (from PyPI)"
python3 -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install --quiet maturin pytest

echo "== ai-usage-py: cargo fmt --check, clippy"
cargo fmt --manifest-path "$here/Cargo.toml" --check
PYO3_PYTHON="$py" cargo clippy --manifest-path "$here/Cargo.toml" --all-targets -- -D warnings

echo "== pip install ./crates/ai-usage-py"
"$py" -m pip install "$here"

echo "== the Rust CLI (the interop test reads and writes files with it)"
(cd "$root" && cargo build -p ai-usage-cli)
export AI_USAGE_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/ai-usage"

echo "== pytest"
# From the crate directory, so the tests import the installed package, not
# the source tree. Exit code 5 means no test was collected: a failure here.
rc=0
(cd "$here" && "$py" -m pytest -q -p no:cacheprovider tests) || rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
[ "$rc" -eq 0 ] || exit "$rc"

echo "== benchmark (README figures; a miss fails only with AI_USAGE_BENCH_STRICT=1)"
brc=0
"$py" "$here/bench.py" || brc=$?
if [ "$brc" -ne 0 ] && [ "${AI_USAGE_BENCH_STRICT:-0}" = "1" ]; then
  exit "$brc"
fi
