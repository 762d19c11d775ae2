#!/usr/bin/env bash
# make demo: grows with the project. Runs what exists end to end.
set -euo pipefail
build=${1:-build}
echo "== Sluice demo =="
"$build/tests/common/core/core_test" --gtest_brief=1
