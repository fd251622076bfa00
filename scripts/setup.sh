#!/usr/bin/env bash
# Installs what gptoss needs to build and test, then builds it.
#   scripts/setup.sh            system packages (apt or Homebrew) + Python test venv + release build
#   scripts/setup.sh --deps     packages and venv only
# On x86-64 Debian/Ubuntu it also installs the aarch64 cross compiler, qemu-user and the arm64
# libraries that scripts/neon.sh (the NEON check in scripts/test.sh) needs.
# macOS: the same packages come from Homebrew:
#   brew install cmake pkg-config highway nlohmann-json simdjson cpp-httplib fmt pcre2 libedit curl googletest google-benchmark
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(build-essential cmake ninja-build ccache pkg-config git python3 python3-venv curl ca-certificates
  libhwy-dev nlohmann-json3-dev libsimdjson-dev libcpp-httplib-dev libfmt-dev libpcre2-dev libedit-dev
  libcurl4-openssl-dev libgtest-dev libbenchmark-dev tmux
  clang libclang-rt-dev)  # clang + its libFuzzer/sanitizer runtimes (libclang_rt.fuzzer) for scripts/fuzz.sh

install_system() {
  if command -v apt-get >/dev/null; then
    local missing=()
    for p in "${APT_PACKAGES[@]}"; do
      dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
      local sudo=""
      [ "$(id -u)" -ne 0 ] && sudo="sudo"
      $sudo apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
  elif command -v brew >/dev/null; then
    brew install cmake ninja ccache pkg-config highway nlohmann-json simdjson cpp-httplib fmt pcre2 libedit \
      curl googletest google-benchmark
  else
    echo "setup.sh: need apt-get (Debian/Ubuntu) or brew (macOS)" >&2
    exit 1
  fi
}

# Cross toolchain + qemu + arm64 multiarch libraries for scripts/neon.sh (x86-64 apt machines).
NEON_PACKAGES=(g++-aarch64-linux-gnu qemu-user libhwy-dev:arm64 libfmt-dev:arm64 libgtest-dev:arm64)
install_neon() {
  command -v apt-get >/dev/null && [ "$(dpkg --print-architecture)" = amd64 ] || return 0
  local missing=() sudo=""
  for p in "${NEON_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $sudo dpkg --add-architecture arm64
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

install_venv() {
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  .venv/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
}

install_system
install_neon
install_venv
if [ "${1:-}" != "--deps" ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
  cmake --build build --target gptoss
  echo "built: build/bin/gptoss"
fi
