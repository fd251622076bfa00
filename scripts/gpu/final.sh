#!/usr/bin/env bash
# On the GPU machine: the whole comparison of bench/results/gpu-vs-llamacpp.md in one device-tool call,
# from one staged dir (STAGE_DIR, made by scripts/gpu/stage.sh with TARGETS="gptoss_cuda_lab
# gptoss_cuda_decode_check backend_cuda_test gptoss" and the two tests below copied into its bin/):
#   1. the CUDA tests (engine_graph_decode_test, backend_cuda_test, backend_cuda_moe_gemm_test);
#   2. gptoss vs llama.cpp: bench/peers/gpu_vs_llamacpp.sh prep measure (carry .peers too);
#   3. gptoss_cuda_lab batched 1 (16 / 64 sequences on the graph decode engine);
#   4. the random 20b (written by prep) vs the exact CPU path (6 tokens, and 70 tokens in one forward: the op
#      path's prefill, NOTES v21), and engine_graph_decode_test's device-greedy test on it (GPTOSS_GREEDY_TEST_MODEL);
#   5. compute-sanitizer memcheck on the tiny decode check and on the lab's attention checks (NOTES v20);
#   6. gptoss bench --parallel 1,16,64 (the CLI's concurrent sequences);
#   7. the kernel lab's checks (every kernel variant vs a CPU double reference) and the 27-token tiny decode
#      check; then a summary of every step's key lines at the very end (the device tool returns only the
#      output's tail: in run I the checks ran before final.sh and fell outside it).
# PEERS=0 (default 1): gptoss alone, for a verification call without llama.cpp (NOTES v17): step 2 becomes the
# random 20b written here, the lab bench (copy bandwidth, kernel and decode rows) and `gptoss bench -p 512 -n 128`
# ROUNDS rounds summarized as in step 2 (no llama.cpp build, GGUF or runs; bench/peers untouched), steps 5 and 7
# run on the GPU while the CPU writes the random 20b, and steps 3, 6 and the device-greedy test of step 4 are
# skipped (the peers' comparison is what they serve).
# Every log goes to $OUT/final-logs.tar.gz (the device tool returns at most 8 files), the peers
# summary to $OUT/summary.md; each step's tail is printed.
. "$(dirname "$0")/env.sh" .gpu-final
OUT=${OUT:-/tmp/gptoss-final}
R20=/tmp/peers/r20
mkdir -p "$OUT/final"
# step LOG TIMEOUT CMD...: runs CMD with a time limit, its output to $OUT/final/LOG, prints the tail.
STEP_LOGS=$OUT/final
TAIL=${TAIL:-12}
source "$(dirname "$0")/step.sh"
# steps 5 and 7: memcheck on the tiny decode check, the lab checks, the 27-token tiny decode check
checks() {
  TAIL=4 step sanitizer.txt 120 compute-sanitizer --tool memcheck --leak-check no "$B/gptoss_cuda_decode_check" \
    tests/data/tiny/model --tokens 358,318,174,506,238 --tol 1e-4
  TAIL=2 step lab-check.txt 120 "$B/gptoss_cuda_lab" check
  # the GQA-8 attention kernels (2, 3) under memcheck: the tiny model (4 / 2 heads) never runs them (NOTES v20)
  TAIL=2 step sanitizer-attention.txt 200 compute-sanitizer --tool memcheck --leak-check no "$B/gptoss_cuda_lab" \
    check-attention
  local tiny=358,318,174,506,238,110,432,82,439,313,58,22,227,18,72,263,496,238,413,469,421,322,225,263,136,254,194
  TAIL=5 step tiny.txt 120 "$B/gptoss_cuda_decode_check" tests/data/tiny/model --tokens $tiny --tol 1e-4
}
date -u
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem,driver_version --format=csv
cat "$S/COMMIT" 2>/dev/null  # the commit the binaries were built from (written when staging)
for t in engine_graph_decode_test backend_cuda_test backend_cuda_moe_gemm_test; do
  TAIL=3 step "$t.txt" 120 "$B/$t"
done
grep -h "PASSED\|FAILED\|SKIPPED" "$OUT"/final/*_test.txt
PEERS=${PEERS:-1}
if [ "$PEERS" = 1 ]; then
  ROUNDS=${ROUNDS:-2} REPS=${REPS:-3} STAGE_DIR=$S OUT=$OUT bench/peers/gpu_vs_llamacpp.sh prep measure || status=1
else  # gptoss alone: the same logs and summary as gpu_vs_llamacpp.sh's, without llama.cpp
  mkdir -p "$OUT/logs/runs" "$(dirname "$R20")"
  # the random 20b written on the CPU while the GPU runs steps 5 and 7 (timing-free)
  timeout 240 python3 tools/make_random_checkpoint.py --preset 20b --out "$R20" --quiet > "$OUT/final/r20-write.txt" 2>&1 &
  wpid=$!
  checks  # steps 5 and 7
  t0=$SECONDS; wait $wpid; echo "=== random 20b written: rc=$? (waited $((SECONDS - t0)) s more)"
  TAIL=2 step lab-bench.txt 240 "$B/gptoss_cuda_lab" bench 128
  cp "$OUT/final/lab-bench.txt" "$OUT/logs/"
  bw=$(sed -n 's/^copy bandwidth.*: \([0-9.]*\) GB\/s.*/\1/p' "$OUT/logs/lab-bench.txt")
  for r in $(seq 1 "${ROUNDS:-2}"); do
    TAIL=1 step "gptoss-$r.txt" 300 sh -c "\"$B/gptoss\" bench \"$R20\" --device cuda -p 512 -n 128 -r ${REPS:-3} --json \
      > \"$OUT/logs/runs/gptoss-cuda-$r.json\""
  done
  python3 bench/peers/summarize.py "$OUT/logs/runs" --what "device-to-device copy" --bandwidth-gbs "$bw" \
    --bytes-per-token "$(python3 bench/peers/bytes_per_token.py "$R20")" > "$OUT/summary.md" || status=1
  tar -C "$OUT" -czf "$OUT/logs.tar.gz" logs && rm -rf "$OUT/logs"
fi
cp "$OUT/summary.md" "$OUT/final/" 2>/dev/null
if [ "$PEERS" = 1 ]; then
  TAIL=14 step batched.txt 120 "$B/gptoss_cuda_lab" batched 1
  # the device greedy (argmax kernel) vs host sampling through the serving engine on the random 20b
  GPTOSS_GREEDY_TEST_MODEL=$R20 TAIL=4 step greedy-r20.txt 180 "$B/engine_graph_decode_test" \
    --gtest_filter='GraphDecodeGreedy.EngineTokensEqualWithAndWithoutDeviceGreedyGivenModel'
fi
TOKENS=200005,1000,2000,3000,4000,5000
TAIL=6 step r20.txt 150 "$B/gptoss_cuda_decode_check" "$R20" --tokens $TOKENS --tol 1e-4 --threads 16
# the op path's prefill (T >= 8 tokens in one forward: the cuBLAS dense GEMMs; NOTES v21) on 70 tokens
TOKENS70=$(python3 -c "print(','.join(str((1000 + 7919 * i) % 200000) for i in range(70)))")
TAIL=6 step r20-prefill.txt 150 "$B/gptoss_cuda_decode_check" "$R20" --tokens "$TOKENS70" --tol 1e-4 --threads 16
[ "$PEERS" = 1 ] && checks
[ "$PEERS" = 1 ] && TAIL=12 step parallel.txt 150 "$B/gptoss" bench "$R20" --parallel 1,16,64 -p 128 -n 128 -r 2 --device cuda
echo "=== summary"
cat "$S/COMMIT" 2>/dev/null | head -1
grep -h "PASSED\|FAILED\|SKIPPED \]" "$OUT"/final/*_test.txt "$OUT"/final/greedy-r20.txt 2>/dev/null
grep -h "checks:" "$OUT"/final/lab-check.txt
for f in r20 r20-prefill tiny sanitizer sanitizer-attention; do
  echo "-- $f"; grep -h "vs cpu\|eager vs\|decode check\|ERROR SUMMARY\|checks:" "$OUT/final/$f.txt"
done
tar -xzOf "$OUT/logs.tar.gz" logs/lab-bench.txt 2>/dev/null | grep "^copy bandwidth\|^g1 gu\|^moe \|positions 512\|^a[0-9]* round"
cat "$OUT/summary.md" 2>/dev/null
tar -C "$OUT" -czf "$OUT/final-logs.tar.gz" final && rm -rf "$OUT/final"
date -u
exit $status
