# Cross-compiling for 64-bit ARM Linux (the NEON paths) with Debian's gcc cross toolchain
# (g++-aarch64-linux-gnu) and arm64 multiarch libraries; binaries run under qemu-aarch64.
#   cmake -S . -B build-neon -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DGPTOSS_KERNELS_ONLY=ON
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
# Tests (and gtest's discovery step) run through qemu-aarch64 with the multiarch arm64 libc
# (/lib/ld-linux-aarch64.so.1, installed with the :arm64 libraries). Not `-L /usr/aarch64-linux-gnu`:
# that loader is the cross package's glibc build, and mixing it with the multiarch libc makes any
# threaded program hang.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
