#!/usr/bin/env bash
# On the GPU machine (bench/kernels/cuda/NOTES.md v24): what a batch-1 decode step costs around its kernels,
# DecodeOptions::step_io masks (1 one input copy, 2 the argmax writing pinned host memory, 4 the argmax
# split over blocks of columns) in one device-tool call, from a dir staged by scripts/gpu/stage.sh with
# TARGETS="gptoss_cuda_lab gptoss_cuda_decode_check backend_cuda_test gptoss" EXTRA_TARGETS=engine_graph_decode_test:
# the CUDA tests, the tiny decode check and memcheck, the lab bench with LAB_STEP_IO rows (MASKS, ROUNDS
# interleaved rounds at 4..131 and 512..639), then the CLI's tg128 on the random 20b with GPTOSS_CUDA_STEP_IO
# 0 / 7 interleaved (CLI_ROUNDS rounds of -p CLI_P (default 512) -n 128 -r 3), and nsys's GPU trace of 24 steps
# each where nsys exists (none on the H100 of v24's calls). CHECKS=0 skips the tests and checks; BATCHES: the
# engines' max_batch list (LAB_STEP_IO_BATCH); R20_CHECK=1: the random 20b vs the exact CPU path at the end.
. "$(dirname "$0")/env.sh" .gpu-G
OUT=${OUT:-/tmp/gptoss-stepio}
R20=/tmp/peers/r20
mkdir -p "$OUT" "$(dirname "$R20")"
source "$(dirname "$0")/step.sh"
staged_env
timeout 240 python3 tools/make_random_checkpoint.py --preset 20b --out "$R20" --quiet > "$OUT/r20-write.txt" 2>&1 &
wpid=$!
if [ "${CHECKS:-1}" = 1 ]; then
  for t in backend_cuda_test engine_graph_decode_test; do TAIL=3 step "$t.txt" 120 "$B/$t"; done
    TAIL=4 step tiny.txt 60 "$B/gptoss_cuda_decode_check" tests/data/tiny/model --tokens $TINY --tol 1e-4
  TAIL=4 step sanitizer.txt 120 compute-sanitizer --tool memcheck --leak-check no "$B/gptoss_cuda_decode_check" \
    tests/data/tiny/model --tokens 358,318,174,506,238 --tol 1e-4
  TAIL=2 step lab-check.txt 120 "$B/gptoss_cuda_lab" check
fi
t0=$SECONDS; wait $wpid; echo "=== random 20b written: rc=$? (waited $((SECONDS - t0)) s more)"
LAB_STEP_IO="${MASKS:-7 0}" LAB_STEP_IO_BATCH="${BATCHES:-64}" LAB_STEP_IO_ROUNDS=${ROUNDS:-3} LAB_ATTENTION_ROUNDS=1 LAB_MOE_ROUNDS=1 \
  step lab-bench.txt 240 "$B/gptoss_cuda_lab" bench 128
for r in $(seq 1 "${CLI_ROUNDS:-2}"); do
  for m in 0 7; do
    GPTOSS_CUDA_STEP_IO=$m TAIL=3 step "cli-io$m-$r.txt" 120 "$B/gptoss" bench "$R20" --device cuda -p ${CLI_P:-512} -n 128 -r 3
  done
done
NSYS=$(command -v nsys || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null | head -1)
echo "nsys: ${NSYS:-none}"
if [ -n "$NSYS" ] && [ "${TRACE:-1}" = 1 ]; then
  for m in 0 7; do
    GPTOSS_CUDA_STEP_IO=$m step "nsys-io$m.txt" 150 "$NSYS" profile -o "$OUT/io$m" --force-overwrite true \
      --trace cuda --cuda-graph-trace node "$B/gptoss" bench "$R20" --device cuda -p 0 -n 24 -r 1 --no-warmup
    step "nsys-stats-io$m.txt" 120 "$NSYS" stats --report cuda_gpu_trace --format csv -o "$OUT/io$m" "$OUT/io$m.nsys-rep"
    gzip -f "$OUT"/io${m}_cuda_gpu_trace.csv 2>/dev/null
  done
fi
if [ "${R20_CHECK:-0}" = 1 ]; then  # the random 20b vs the exact CPU path (6 tokens), the engine's default step_io
  TAIL=6 step r20.txt 200 "$B/gptoss_cuda_decode_check" "$R20" --tokens 200005,1000,2000,3000,4000,5000 --tol 1e-4 \
    --threads 16
  GPTOSS_GREEDY_TEST_MODEL=$R20 TAIL=4 step greedy-r20.txt 180 "$B/engine_graph_decode_test" \
    --gtest_filter='GraphDecodeGreedy.EngineTokensEqualWithAndWithoutDeviceGreedyGivenModel'
fi
echo "=== summary"
cat "$S/COMMIT" 2>/dev/null | head -1
grep -h "PASSED\|FAILED" "$OUT"/*_test.txt "$OUT"/greedy-r20.txt 2>/dev/null
grep -h "argmax\|checks:" "$OUT"/lab-check.txt 2>/dev/null
for f in tiny sanitizer r20; do [ -f "$OUT/$f.txt" ] && { echo "-- $f"; grep -h "vs cpu\|eager vs\|decode check\|ERROR SUMMARY" "$OUT/$f.txt"; }; done
grep -h "^copy bandwidth\|^g1 gu\|^io[0-9]" "$OUT/lab-bench.txt"
for f in "$OUT"/cli-io*.txt; do echo "-- $(basename "$f")"; grep -h "tg128\|pp512" "$f"; done
date -u
exit $status
