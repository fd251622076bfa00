#!/usr/bin/env bash
# Runs every test: C++ units (CTest) and end-to-end/conformance tests (pytest).
# Builds into build-test/ with warnings as errors. GPU tests skip without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${GPTOSS_TEST_BUILD:-build-test}
JOBS=${JOBS:-$(nproc)}

cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGPTOSS_WERROR=ON ${GPTOSS_CMAKE_ARGS:-}
cmake --build "$BUILD" -j "$JOBS"
ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS"

GPTOSS_BIN="$PWD/$BUILD/bin/gptoss" .venv/bin/python -m pytest -q tests/py "$@"
