#!/usr/bin/env bash
# gptoss (--device cuda) against llama.cpp's CUDA build on the same full-size random gpt-oss-20b
# weights (bf16 attention/router/embedding/unembedding, MXFP4 experts), on the GPU machine, with the
# device-to-device copy bandwidth measured in the same call (issue 8). llama.cpp's code never enters
# the repo: `pack` copies a trimmed source tree into .peers/ (ignored, carried by the device tool).
#
# Here (this machine), once:
#   bench/peers/gpu_vs_llamacpp.sh pack LLAMA_CPP_SRC   # e.g. vendor/llama.cpp of the llama-cpp-python
#                                                       # sdist -> .peers/llama.cpp-src.tar.xz
#   BUILD=build-cuda-peers STAGE_DIR=.gpu-peers scripts/gpu/stage.sh
# On the GPU machine (device tool, carry [".gpu-peers", ".peers"]); each step skips what is done:
#   bench/peers/gpu_vs_llamacpp.sh prep      # build llama-bench (CUDA, sm_90a), write the random 20b,
#                                            # tokenizer files, convert to GGUF (MXFP4 experts kept)
#   bench/peers/gpu_vs_llamacpp.sh measure   # copy bandwidth, gptoss bench, llama-bench, interleaved
# Results go to $OUT (the device tool's output folder, which returns at most 8 files): summary.md
# (also printed last) and logs.tar.gz with every log and the raw JSON of each run.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
W=${PEERS_WORK:-/tmp/peers}            # outside the carried folders: survives while the machine is warm
S=${STAGE_DIR:-.gpu-peers}
OUT=${OUT:-/tmp/peers-out}
ROUNDS=${ROUNDS:-2}
REPS=${REPS:-3}
L=$OUT/logs                            # every log; packed into $OUT/logs.tar.gz at the end
mkdir -p "$W" "$L"
GGUF=$W/gpt-oss-20b-random-bf16-mxfp4.gguf
MODEL=$W/r20

pack() {
  local src=${1:?usage: gpu_vs_llamacpp.sh pack LLAMA_CPP_SRC}
  local t
  t=$(mktemp -d)
  mkdir -p "$t/llama.cpp/ggml/src" "$t/llama.cpp/tools"
  (cd "$src" && cp -r CMakeLists.txt LICENSE cmake include src common vendor licenses convert_hf_to_gguf.py \
     conversion gguf-py "$t/llama.cpp/" && cp -r ggml/CMakeLists.txt ggml/cmake ggml/include "$t/llama.cpp/ggml/")
  # ggml core, CPU and CUDA backends only.
  for f in "$src"/ggml/src/*; do
    case $(basename "$f") in
      ggml-blas|ggml-cann|ggml-et|ggml-hexagon|ggml-hip|ggml-metal|ggml-musa|ggml-opencl|ggml-openvino|\
      ggml-sycl|ggml-virtgpu|ggml-vulkan|ggml-webgpu|ggml-zdnn|ggml-zendnn) ;;
      *) cp -r "$f" "$t/llama.cpp/ggml/src/" ;;
    esac
  done
  cp -r "$src/tools/llama-bench" "$src/tools/batched-bench" "$t/llama.cpp/tools/"
  printf '%s\n' 'find_package(Threads REQUIRED)' 'llama_add_compile_flags()' \
    'add_subdirectory(llama-bench)' 'add_subdirectory(batched-bench)' > "$t/llama.cpp/tools/CMakeLists.txt"
  (cd "$src" && git log -1 --format='%H %cd' 2>/dev/null) > "$t/llama.cpp/LLAMA_CPP_COMMIT" || true
  [ -s "$t/llama.cpp/LLAMA_CPP_COMMIT" ] || cp "${LLAMA_CPP_COMMIT_FILE:-/dev/null}" "$t/llama.cpp/LLAMA_CPP_COMMIT"
  mkdir -p .peers
  grep -qx '/.peers/' .git/info/exclude 2>/dev/null || echo '/.peers/' >> .git/info/exclude
  tar -C "$t" -cJf .peers/llama.cpp-src.tar.xz llama.cpp
  rm -rf "$t"
  ls -la .peers/llama.cpp-src.tar.xz
}

prep() {
  local t0=$SECONDS
  [ -f "$W/llama.cpp/CMakeLists.txt" ] || tar -C "$W" -xJf .peers/llama.cpp-src.tar.xz
  cat "$W/llama.cpp/LLAMA_CPP_COMMIT" | tee "$L/llama-commit.txt"
  # llama.cpp: CUDA build, sm_90a, all cores.
  (
    if [ ! -x "$W/build/bin/llama-bench" ]; then
      cmake -S "$W/llama.cpp" -B "$W/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
        -DCMAKE_CUDA_ARCHITECTURES=90a -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF &&
        cmake --build "$W/build" -j "$(nproc)" --target llama-bench llama-batched-bench
    fi
  ) > "$L/llama-build.txt" 2>&1 &
  local build_pid=$!
  # Weights: the random 20b (same generator and seed as on the CPU machine), tokenizer files beside
  # symlinks to it (gguf's converter reads tokenizer.json through transformers), then the GGUF.
  (
    set -e
    [ -f "$MODEL/config.json" ] || python3 tools/make_random_checkpoint.py --preset 20b --out "$MODEL" --quiet
    mkdir -p "$W/hf20b"
    for f in "$MODEL"/*; do ln -sf "$f" "$W/hf20b/"; done
    [ -f "$W/hf20b/tokenizer.json" ] || python3 tools/make_tokenizer_json.py "$W/hf20b/tokenizer.json"
    printf '%s\n' '{"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|startoftext|>",' \
      '"eos_token": "<|return|>", "pad_token": "<|endoftext|>", "model_max_length": 131072}' \
      > "$W/hf20b/tokenizer_config.json"
    if [ ! -f "$GGUF" ]; then
      python3 "$W/llama.cpp/convert_hf_to_gguf.py" "$W/hf20b" --outtype bf16 --outfile "$GGUF.part"
      mv "$GGUF.part" "$GGUF"
    fi
  ) > "$L/weights.txt" 2>&1 &
  local weights_pid=$!
  wait $build_pid; local brc=$?
  wait $weights_pid; local wrc=$?
  tail -3 "$L/llama-build.txt"; tail -3 "$L/weights.txt"
  ls -la "$GGUF" "$MODEL" 2>&1 | head -8
  echo "prep: build rc=$brc weights rc=$wrc in $((SECONDS - t0)) s"
  [ $brc -eq 0 ] && [ $wrc -eq 0 ]
}

measure() {
  export LD_LIBRARY_PATH="$ROOT/$S/lib:${LD_LIBRARY_PATH:-}"
  local G=$ROOT/$S/bin/gptoss LB=$W/build/bin/llama-bench
  for f in "$G" "$LB" "$GGUF" "$MODEL/config.json"; do
    [ -e "$f" ] || { echo "missing $f: run prep first"; return 1; }
  done
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem,driver_version --format=csv | tee "$L/card.txt"
  local res=$L/runs
  mkdir -p "$res"
  # Copy bandwidth (and our kernel lab's batch sweep) from the staged lab binary.
  timeout 240 "$ROOT/$S/bin/gptoss_cuda_lab" bench 128 > "$L/lab-bench.txt" 2>&1
  local bw1
  bw1=$(sed -n 's/^copy bandwidth.*: \([0-9.]*\) GB\/s.*/\1/p' "$L/lab-bench.txt")
  echo "copy bandwidth: ${bw1:-?} GB/s"
  for r in $(seq 1 "$ROUNDS"); do
    timeout 300 "$G" bench "$MODEL" --device cuda -p 512 -n 128 -r "$REPS" --json > "$res/gptoss-cuda-$r.json" \
      2> "$L/gptoss-$r.err"
    echo "gptoss round $r rc=$?: $(tail -c 400 "$res/gptoss-cuda-$r.json")"
    timeout 300 "$LB" -m "$GGUF" -p 512 -n 128 -ngl 99 -r "$REPS" -o json > "$res/llama-$r.json" \
      2> "$L/llama-$r.err"
    echo "llama-bench round $r rc=$?"
  done
  # Default llama-bench table once, for the record (flash attention as llama-bench chooses it).
  timeout 200 "$LB" -m "$GGUF" -p 512 -n 128 -ngl 99 -r "$REPS" 2>&1 | tee "$L/llama-bench-table.txt" | grep '|'
  # Throughput at 16 and 64 concurrent sequences (llama.cpp side; ours is in lab-bench.txt).
  if [ "${BATCHED:-1}" = 1 ] && [ -x "$W/build/bin/llama-batched-bench" ]; then
    timeout 200 "$W/build/bin/llama-batched-bench" -m "$GGUF" -ngl 99 -c 20480 -b 2048 -ub 512 -npp 128 -ntg 128 \
      -npl 1,16,64 > "$L/llama-batched.txt" 2>&1
    grep '|' "$L/llama-batched.txt"
  fi
  python3 bench/peers/summarize.py "$res" --what "device-to-device copy" --bandwidth-gbs "$bw1" \
    --bytes-per-token "$(python3 bench/peers/bytes_per_token.py "$MODEL")" | tee "$OUT/summary.md" "$L/summary.md"
}

[ $# -gt 0 ] || set -- prep measure
case "$1" in
  pack) shift; pack "$@"; exit ;;
esac
status=0
for step in "$@"; do
  case "$step" in
    prep) prep || status=1 ;;
    measure) measure || status=1 ;;
    *) echo "unknown step $step"; status=1 ;;
  esac
done
tar -C "$OUT" -czf "$OUT/logs.tar.gz" logs && rm -rf "$L"
exit $status
