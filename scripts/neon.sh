#!/usr/bin/env bash
# The ARM (NEON) check on an x86 machine: cross-compiles src/core and the CPU backends for aarch64
# (cmake/aarch64-linux-gnu.cmake, GPTOSS_KERNELS_ONLY) and runs their unit tests under qemu-aarch64,
# as a Cortex-A72 (NEON only, as Apple Silicon runs the code: every test), then the fast kernels'
# tests again as qemu's "max" CPU (Highway's SVE2 and SVE targets too). The fast
# kernels' tests run each kernel on every SIMD target the CPU supports against the exact kernels.
# Needs g++-aarch64-linux-gnu, qemu-user and arm64 libhwy-dev/libfmt-dev/libgtest-dev
# (scripts/setup.sh --neon installs them on Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${NEON_BUILD:-build-neon}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
  -DGPTOSS_KERNELS_ONLY=ON -DGPTOSS_WERROR=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j "$JOBS"
echo "== aarch64 unit tests under qemu -cpu cortex-a72 (NEON)"
QEMU_CPU=cortex-a72 ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS" --timeout 1800
echo "== aarch64 fast-kernel tests under qemu -cpu max (SVE2, SVE, NEON)"
QEMU_CPU=max ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS" --timeout 1800 -R CpuFast
