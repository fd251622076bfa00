#!/usr/bin/env bash
# On the GPU machine, with a staged dir carried (STAGE_DIR, default .gpu-graphrun; built by
# `BUILD=build-cuda-graphrun STAGE_DIR=.gpu-graphrun TARGETS="gptoss engine_graph_decode_test"
# scripts/gpu/stage.sh`, then cp build-cuda-graphrun/src/engine/engine_graph_decode_test into $S/bin):
# the CLI's decode through the CUDA-graph engine (default) against the op path
# (GPTOSS_CUDA_GRAPH_DECODE=0) and the exact CPU path.
#   gtest     engine_graph_decode_test (runner logits, graph engine vs op path, tiny goldens)
#   greedy-tiny  gptoss generate greedy token ids: cpu, cuda op path, cuda graph (tiny full-vocab
#             model, 300 tokens, past the sliding ring of 8 + 256 - 1 positions)
#   greedy-20b   the same on the full-size random 20b, GEN20 (8) tokens
#   sanitize  compute-sanitizer memcheck on the gtest and a short generate
#   bench     gptoss bench -p 512 -n 128 -r REPS (3) on the random 20b, op path then graph, ROUNDS (1)
. "$(dirname "$0")/env.sh" .gpu-graphrun
export TIKTOKEN_ENCODINGS_BASE="$PWD/tests/data"
OUT=${OUT:-/tmp/gptoss-gpu}
mkdir -p "$OUT"
M=/tmp/rand-20b
T=/tmp/tiny-fv
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv | tee "$OUT/card.txt"
[ $# -gt 0 ] || set -- gtest greedy-tiny sanitize bench greedy-20b
ids() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['completion_ids'])" "$1" 2>/dev/null; }
gen3() {  # model n ctx label
  for d in cpu cuda-op cuda; do
    dev=${d%-op}; env=1; [ "$d" = cuda-op ] && env=0
    GPTOSS_CUDA_GRAPH_DECODE=$env timeout ${GEN_TIMEOUT:-300} $B/gptoss generate "$1" -p "Once upon a time" --raw -n "$2" --ctx "$3" \
      --temperature 0 --json --device "$dev" > "/tmp/gen-$4-$d.json" 2> "/tmp/gen-$4-$d.err" || { echo "$4 $d failed"; tail -3 "/tmp/gen-$4-$d.err"; }
  done
  a=$(ids /tmp/gen-$4-cpu.json); b=$(ids /tmp/gen-$4-cuda-op.json); c=$(ids /tmp/gen-$4-cuda.json)
  echo "$4: cpu ${a:0:80}..." | tee -a "$OUT/greedy.txt"
  if [ -n "$a" ] && [ "$a" = "$c" ]; then echo "$4: cuda graph == cpu" | tee -a "$OUT/greedy.txt"; else echo "$4: cuda graph DIFFERS from cpu: ${c:0:200}" | tee -a "$OUT/greedy.txt"; status=1; fi
  if [ -n "$a" ] && [ "$a" = "$b" ]; then echo "$4: cuda op == cpu" | tee -a "$OUT/greedy.txt"; else echo "$4: cuda op differs from cpu: ${b:0:200}" | tee -a "$OUT/greedy.txt"; fi
}
for what in "$@"; do
  case "$what" in
    gtest) $B/engine_graph_decode_test 2>&1 | tee "$OUT/gtest.txt" | grep -E "OK|FAILED|PASSED|SKIPPED|Failure|error|Expected|Which" || status=1 ;;
    greedy-tiny)
      [ -f $T/config.json ] || python3 tools/make_tiny_checkpoint.py --out $T --vocab 201088 --seed 11 >/dev/null
      gen3 $T 300 1024 tiny
      ;;
    greedy-20b)
      [ -f $M/config.json ] || { time python3 tools/make_random_checkpoint.py --preset 20b --out $M --quiet; } 2>&1 | tail -3
      gen3 $M "${GEN20:-8}" 4096 r20b
      ;;
    sanitize)
      compute-sanitizer --tool memcheck --leak-check no $B/engine_graph_decode_test > "$OUT/sanitizer.txt" 2>&1 || status=1
      compute-sanitizer --tool memcheck --leak-check no $B/gptoss generate $T -p hi --raw -n 12 --ctx 256 --temperature 0 \
        --device cuda >> "$OUT/sanitizer.txt" 2>&1 || status=1
      grep -E "ERROR SUMMARY|PASSED|FAILED" "$OUT/sanitizer.txt"
      ;;
    bench)
      [ -f $M/config.json ] || { time python3 tools/make_random_checkpoint.py --preset 20b --out $M --quiet; } 2>&1 | tail -3
      for r in $(seq 1 "${ROUNDS:-1}"); do
        echo "--- round $r: op path (GPTOSS_CUDA_GRAPH_DECODE=0)"
        GPTOSS_CUDA_GRAPH_DECODE=0 $B/gptoss bench $M -p 512 -n 128 -r ${REPS:-3} --device cuda 2>&1 | tee -a "$OUT/bench-op.txt" | tail -3
        echo "--- round $r: graph decode (default)"
        $B/gptoss bench $M -p 512 -n 128 -r ${REPS:-3} --device cuda 2>&1 | tee -a "$OUT/bench-graph.txt" | tail -3
      done
      ;;
  esac
done
exit $status
