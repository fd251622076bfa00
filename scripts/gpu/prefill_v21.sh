#!/usr/bin/env bash
# On the GPU machine (NOTES.md v21): the op path's prefill error on the random 20b. From a dir staged by
# scripts/gpu/stage.sh with TARGETS="gptoss_cuda_decode_check backend_cuda_test gptoss" and
# EXTRA_TARGETS=backend_cuda_moe_gemm_test:
#   1. backend_cuda_moe_gemm_test's DenseMatmulAtModelShapes (every prefill GEMM mode vs float64 at the 20b's
#      shapes, T = 8 / 12 / 16 / 70) while the CPU writes the random 20b;
#   2. gptoss_cuda_decode_check --trace on the random 20b (tokens (1000 + 7919 i) mod 200000) at each T in
#      TRACE_T under each GEMM mode of MODES (env assignments, "-" = the default);
#   3. pp512 (`gptoss bench -p 512 -n 0`) under each mode of PP_MODES, PP_ROUNDS interleaved rounds (before them,
#      once per mode of PROFILE_MODES, with GPTOSS_CUDA_PROFILE=1: the per-op split, in pp-profile-*.txt);
#   4. CHECK_T: decode_check (no trace) at these T under each mode of CHECK_MODES.
# TESTS: CUDA tests run whole (before the random 20b is ready); MEMCHECK=1: compute-sanitizer memcheck on
# DenseMatmulEqualsFloat64 and the 27-token tiny decode check, and that check without it. SHAPES_KCHUNKS: the
# model-shape test again with GPTOSS_CUDA_PREFILL_KCHUNK=k for each k. LAB=1: the lab bench (TARGETS + gptoss_cuda_lab).
# Logs to $OUT/prefill-v21-logs.tar.gz; a summary of the key lines at the end.
. "$(dirname "$0")/env.sh" .gpu-G
RET=${OUT:-/tmp}
OUT=/tmp/gptoss-prefill
mkdir -p "$OUT"
R20=/tmp/r20
# A mode: "-" (the defaults), env assignments joined by commas (A=1,B=2), or (PP_MODES only) "old": the
# defaults of another build's CLI staged as $S/old/gptoss (NOTES v23: the baseline in the same call).
MODES=${MODES:-"- GPTOSS_CUDA_PREFILL_DENSE=x16"}
TRACE_T=${TRACE_T:-16}
PP_MODES=${PP_MODES:-"-"}
source "$(dirname "$0")/step.sh"
tokens() { python3 -c "import sys; print(','.join(str((1000 + 7919 * i) % 200000) for i in range(int(sys.argv[1]))))" "$1"; }
tag() { [ "$1" = - ] && echo default || echo "$1" | sed 's/GPTOSS_CUDA_PREFILL_//g; s/GPTOSS_CUDA_//g; s/=/-/g; s/,/_/g'; }
# envs MODE: the mode's assignments as words for env (none for "-").
envs() { [ "$1" = - ] || echo "${1//,/ }"; }
date -u
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem,driver_version --format=csv
cat "$S/COMMIT" 2>/dev/null
ls /usr/local/cuda/lib64/libcublas.so.* 2>/dev/null | head -3
timeout 240 python3 tools/make_random_checkpoint.py --preset 20b --out "$R20" --quiet > "$OUT/r20-write.txt" 2>&1 &
wpid=$!
[ "${SHAPES:-1}" = 1 ] && step shapes.txt 200 "$B/backend_cuda_moe_gemm_test" --gtest_filter='*DenseMatmulAtModelShapes*'
for k in ${SHAPES_KCHUNKS:-}; do  # the model-shape test's "default" rows with GPTOSS_CUDA_PREFILL_KCHUNK=k
  step "shapes-k$k.txt" 120 env GPTOSS_CUDA_PREFILL_KCHUNK=$k "$B/backend_cuda_moe_gemm_test" \
    --gtest_filter='*DenseMatmulAtModelShapes*'
done
[ -n "${TESTS:-}" ] && for t in $TESTS; do step "$t.txt" 150 "$B/$t"; done
# LAB=1: the lab bench (NOTES v21 ran it at the early-launch experiment's commit with LAB_PDL_EARLY set)
[ "${LAB:-0}" = 1 ] && step lab-bench.txt 300 "$B/gptoss_cuda_lab" bench
if [ "${MEMCHECK:-0}" = 1 ]; then  # the chunked prefill GEMM (K = 2880) and the tiny model's op path (T = 27)
  step san-dense.txt 240 compute-sanitizer --tool memcheck --leak-check no "$B/backend_cuda_moe_gemm_test" \
    --gtest_filter='*DenseMatmulEqualsFloat64*'
  step san-tiny.txt 120 compute-sanitizer --tool memcheck --leak-check no "$B/gptoss_cuda_decode_check" \
    tests/data/tiny/model --tokens $TINY --tol 1e-4
  step tiny.txt 60 "$B/gptoss_cuda_decode_check" tests/data/tiny/model --tokens $TINY --tol 1e-4
fi
t0=$SECONDS; wait $wpid; echo "=== random 20b written: rc=$? (waited $((SECONDS - t0)) s more)"
for T in $TRACE_T; do
  for m in $MODES; do
    [ $SECONDS -lt ${TRACE_UNTIL:-400} ] || { echo "=== trace T $T $m skipped (time)"; continue; }
    read -ra e <<< "$(envs "$m")"
    step "trace-$T-$(tag "$m").txt" 150 env "${e[@]}" "$B/gptoss_cuda_decode_check" "$R20" --tokens "$(tokens "$T")" \
      --tol 1e-4 --threads 16 --trace 8
  done
done
for T in ${CHECK_T:-}; do
  for m in ${CHECK_MODES:-"-"}; do
    [ $SECONDS -lt ${CHECK_UNTIL:-470} ] || { echo "=== check T $T $m skipped (time)"; continue; }
    read -ra e <<< "$(envs "$m")"
    step "check-$T-$(tag "$m").txt" 150 env "${e[@]}" "$B/gptoss_cuda_decode_check" "$R20" --tokens "$(tokens "$T")" \
      --tol 1e-4 --threads 16
  done
done
for m in ${PROFILE_MODES:-}; do
  read -ra e <<< "$(envs "$m")"
  step "pp-profile-$(tag "$m").txt" 120 env "${e[@]}" GPTOSS_CUDA_PROFILE=1 "$B/gptoss" bench "$R20" --device cuda \
    -p 512 -n 0 -r 3 --json
done
for r in $(seq 1 "${PP_ROUNDS:-0}"); do
  for m in $PP_MODES; do
    [ $SECONDS -lt ${PP_UNTIL:-520} ] || { echo "=== pp512 $m skipped (time)"; continue; }
    read -ra e <<< "$(envs "$m")"
    bin=$B/gptoss
    [ "$m" = old ] && { bin=$S/old/gptoss; e=(); }
    step "pp-$r-$(tag "$m").txt" 120 env "${e[@]}" "$bin" bench "$R20" --device cuda -p 512 -n 0 -r 3 --json
  done
done
echo "=== summary"
grep -h "model shapes:" "$OUT/shapes.txt" 2>/dev/null
for f in $(cd "$OUT" && ls shapes-k*.txt 2>/dev/null); do echo "-- $f"; grep -h "default" "$OUT/$f"; done
grep -h "^copy bandwidth\|^early" "$OUT/lab-bench.txt" 2>/dev/null
grep -h "PASSED\|FAILED" "$OUT"/*.txt 2>/dev/null
grep -h "ERROR SUMMARY" "$OUT"/san-*.txt 2>/dev/null
grep -h "vs cpu\|decode check" "$OUT"/tiny.txt 2>/dev/null
for f in $(cd "$OUT" && ls trace-*.txt check-*.txt 2>/dev/null); do
  echo "-- $f"; grep -h "vs cpu\|decode check\|trace: op path\|worst\|differs\|smallest\|error" "$OUT/$f" | grep -v "differs at no row" | cut -c1-400
done
for f in $(cd "$OUT" && ls pp-profile-*.txt 2>/dev/null); do
  echo "-- $f"; sed -n '/cuda backend profile/,$p' "$OUT/$f" | grep " ms " | sort -k1,1 | cut -c1-100
done
for f in $(cd "$OUT" && ls pp-*.txt 2>/dev/null); do
  echo "-- $f $(grep -o '"prefill_tokens_per_s":[^,]*' "$OUT/$f")"
done
tar -C "$OUT" -czf "$RET/prefill-v21-logs.tar.gz" .
date -u
exit $status
