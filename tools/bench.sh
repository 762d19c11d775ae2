#!/usr/bin/env bash
# make bench: runs every benchmark binary that exists, in order.
set -euo pipefail
build=${1:-build}
for b in transport storage_node metadata client fuse rebalance; do
  exe="$build/bench/$b/bench_$b"
  if [ -x "$exe" ]; then
    echo "== bench/$b =="
    "$exe"
  fi
done
echo "== bench/prefetch =="
SLUICE_BUILD_DIR="$build" /usr/bin/python3 "$(dirname "$0")/../bench/prefetch/bench_prefetch.py"
