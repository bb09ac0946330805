#!/usr/bin/env bash
# Run every benchmark script in benches/ and print its JSON line. Speed never fails this script;
# a benchmark that crashes does. Pass --short for the CI mode.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for bench in benches/bench_*.py; do
    echo "== $bench"
    python "$bench" "$@" || { echo "benchmark $bench failed" >&2; status=1; }
done
exit $status
