#!/usr/bin/env bash
# Here (no GPU): build the CUDA targets and stage what the GPU machine needs into .gpu/ (ignored by
# git; pass it to the device tool's `carry`). BUILD (default build-cuda) and STAGE_DIR (default .gpu)
# let two people stage side by side. The GPU machine has no package registry and no libfmt,
# so the binaries travel with the shared libraries they need beyond the base system.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build-cuda}
S=${STAGE_DIR:-.gpu}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGPTOSS_CUDA=ON -DGPTOSS_WERROR=ON >/dev/null
# TARGETS: what to build (default all four; the gptoss CLI is only needed by compare20b.sh); EXTRA_TARGETS
# may add backend_cuda_moe_gemm_test, engine_graph_decode_test, gptoss_cuda_timeline (the kernels built
# again with the timeline stamps, NOTES.md v13) and gptoss_cuda_stream_floor (NOTES.md v28, v34), which are then
# staged too.
cmake --build "$BUILD" -j2 --target ${TARGETS:-gptoss_cuda_lab gptoss_cuda_decode_check backend_cuda_test gptoss} ${EXTRA_TARGETS:-}
EXCLUDE=$(git rev-parse --git-path info/exclude)  # also in a git worktree, where .git is a file
mkdir -p "$(dirname "$EXCLUDE")"
grep -qx "/$S/" "$EXCLUDE" 2>/dev/null || echo "/$S/" >> "$EXCLUDE"
rm -rf "$S" && mkdir -p "$S/bin" "$S/lib"
git rev-parse HEAD > "$S/COMMIT"  # what the binaries were built from (scripts/gpu/final.sh prints it)
git status --short --untracked-files=no >> "$S/COMMIT"
for f in "$BUILD"/bin/gptoss_cuda_lab "$BUILD"/bin/gptoss_cuda_decode_check "$BUILD"/src/backend/cuda/backend_cuda_test \
         "$BUILD"/src/backend/cuda/backend_cuda_moe_gemm_test "$BUILD"/src/engine/engine_graph_decode_test \
         "$BUILD"/bin/gptoss_cuda_timeline "$BUILD"/bin/gptoss_cuda_stream_floor; do
  case " ${TARGETS:-gptoss_cuda_lab gptoss_cuda_decode_check backend_cuda_test} ${EXTRA_TARGETS:-} " in
    *" $(basename "$f") "*) cp "$f" "$S/bin/" ;;
  esac
done
case " ${TARGETS:-gptoss} " in *" gptoss "*) cp "$BUILD"/bin/gptoss "$S/bin/" 2>/dev/null || true ;; esac
for lib in $(ldd "$S"/bin/* | awk '/=>/ {print $3}' | sort -u); do
  case "$(basename "$lib")" in
    # cuBLAS (600 MB) is not carried: the GPU machine's CUDA toolkit has it (run.sh / compare20b.sh
    # put /usr/local/cuda/lib64 on LD_LIBRARY_PATH).
    libcublas*.so*) ;;
    libc.so*|libm.so*|libresolv.so*|libstdc++.so*|libgcc_s.so*|libpthread.so*|libdl.so*|librt.so*) ;;
    *) cp -L "$lib" "$S/lib/" ;;
  esac
done
du -sh "$S"
