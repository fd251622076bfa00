#!/usr/bin/env bash
# Runs every test:
#   1. release build (warnings as errors): C++ units through CTest, then the end-to-end and
#      conformance tests through pytest;
#   2. TSan build: the engine scheduler and server tests (the threaded parts);
#   3. ASan+UBSan build (gcc): every C++ unit (with leak checking) and the whole pytest suite again
#      against the sanitized binary;
#   4. libFuzzer targets (clang, scripts/fuzz.sh): each replays its committed crash inputs and
#      corpus, then fuzzes for FUZZ_SECONDS (default 15 here) seconds.
#   5. neon (scripts/neon.sh): core and the CPU backends cross-compiled for aarch64, their unit tests
#      under qemu-aarch64 (NEON; the fast kernels also on SVE/SVE2); x86-64 machines only.
# GPU tests skip without a GPU (and are run on the GPU machine by scripts/gpu/).
# GPTOSS_TEST_STAGES picks stages (default "release tsan asan fuzz neon"; e.g. GPTOSS_TEST_STAGES=release
# runs the first only). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
STAGES=${GPTOSS_TEST_STAGES:-release tsan asan fuzz neon}

stage() { printf '\n=== %s (%s s since start) ===\n' "$1" "$SECONDS"; }

for s in $STAGES; do
  case "$s" in
    release)
      stage "release build, ctest, pytest"
      cmake -S . -B build-test -G Ninja -DCMAKE_BUILD_TYPE=Release -DGPTOSS_WERROR=ON ${GPTOSS_CMAKE_ARGS:-}
      cmake --build build-test -j "$JOBS"
      ctest --test-dir build-test --output-on-failure -j "$JOBS"
      GPTOSS_BIN="$PWD/build-test/bin/gptoss" .venv/bin/python -m pytest -q tests/py "$@"
      ;;
    asan)
      stage "ASan+UBSan build, ctest, pytest"
      cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGPTOSS_WERROR=ON \
        -DGPTOSS_SANITIZE=ON -DGPTOSS_CUDA=OFF
      # The unit tests and the CLI only: not the bench/ kernel programs (CUDA is off here).
      targets=$(cmake --build build-asan --target help | sed -n 's/^\([a-z0-9_]*_test\|gptoss\): .*/\1/p')
      cmake --build build-asan -j "$JOBS" --target $targets
      ubsan=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
      ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1} UBSAN_OPTIONS=$ubsan \
        ctest --test-dir build-asan --output-on-failure -j "$JOBS"
      # End-to-end under ASan+UBSan: memory errors and UB abort the binary and fail the test; leak
      # checking stays with the unit tests above (a CLI exiting mid-stream owns threads on purpose).
      # GPTOSS_TEST_SANITIZER tells the load tests that RSS holds ASan's quarantine here.
      ASAN_OPTIONS=abort_on_error=1:detect_leaks=0 UBSAN_OPTIONS=$ubsan GPTOSS_TEST_SANITIZER=address \
        GPTOSS_BIN="$PWD/build-asan/bin/gptoss" .venv/bin/python -m pytest -q tests/py "$@"
      ;;
    tsan)
      stage "TSan build: engine and server tests"
      cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGPTOSS_WERROR=ON \
        -DGPTOSS_TSAN=ON -DGPTOSS_CUDA=OFF
      targets=$(cmake --build build-tsan --target help | sed -n 's/^\(\(engine\|server\)_[a-z_]*test\): .*/\1/p')
      cmake --build build-tsan -j "$JOBS" --target $targets
      TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1} \
        ctest --test-dir build-tsan --output-on-failure -j "$JOBS" -R '^(Scheduler|EngineOnModel|Server|Http|Openai|Ollama|Responses)'
      ;;
    fuzz)
      stage "libFuzzer targets: committed crash inputs, corpus, ${FUZZ_SECONDS:-15} s of fuzzing each"
      FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz} FUZZ_SECONDS=${FUZZ_SECONDS:-15} FUZZ_JOBS="$JOBS" scripts/fuzz.sh
      ;;
    neon)
      stage "aarch64 (NEON) build of the CPU backends, unit tests under qemu"
      if [ "$(uname -m)" = x86_64 ]; then
        JOBS="$JOBS" scripts/neon.sh
      else
        echo "not an x86-64 machine: the release stage above already ran the native ARM build"
      fi
      ;;
    *) echo "test.sh: unknown stage '$s'" >&2; exit 2 ;;
  esac
done
stage "all stages passed"
