#!/usr/bin/env bash
# On the GPU machine (bench/kernels/cuda/NOTES.md v25): MoE variants 1, 2 (each block's weight tile staged in
# shared memory by the bulk-copy engine) against variant 0 (the weights streamed through registers), one
# device-tool call, from a dir staged by scripts/gpu/stage.sh (STAGE_DIR, default .gpu-G) with TARGETS="gptoss_cuda_lab
# gptoss_cuda_decode_check backend_cuda_test gptoss": the lab's checks (every variant), the tiny decode check for
# each "G,GU,DN" triple in SHAPES, compute-sanitizer memcheck for SAN_SHAPES, the lab bench with the MoE pairs
# PAIRS (LAB_MOE_PAIRS, ROUNDS interleaved rounds at 4..131) and, where IO_PAIRS is set, those pairs at 4..131 and
# 512..639 (LAB_STEP_IO 7 rows, IO_ROUNDS rounds); the static SASS mix of the MoE kernels where SASS=1.
. "$(dirname "$0")/env.sh" .gpu-G
OUT=${OUT:-/tmp/gptoss-v25}
mkdir -p "$OUT"
source "$(dirname "$0")/step.sh"
staged_env
if [ "${CHECKS:-1}" = 1 ]; then
  TAIL=2 step lab-check.txt ${CHECK_TIMEOUT:-150} "$B/gptoss_cuda_lab" check
  for s in ${SHAPES:-1,1,1 1,2,2}; do
    TAIL=4 step "tiny-$s.txt" 60 "$B/gptoss_cuda_decode_check" tests/data/tiny/model --tokens $TINY --tol 1e-4 --shapes "$s"
  done
  for s in ${SAN_SHAPES:-1,1,1 1,2,2}; do
    TAIL=4 step "sanitizer-$s.txt" 120 compute-sanitizer --tool memcheck --leak-check no "$B/gptoss_cuda_decode_check" \
      tests/data/tiny/model --tokens 358,318,174,506,238 --tol 1e-4 --shapes "$s"
  done
fi
[ "${SASS:-0}" = 1 ] && step sass.txt 60 scripts/gpu/sass_mix.sh "$B/gptoss_cuda_lab"
IO=()
[ -n "${IO_PAIRS:-}" ] && IO=(LAB_STEP_IO=7 "LAB_STEP_IO_MOE=$IO_PAIRS" "LAB_STEP_IO_ROUNDS=${IO_ROUNDS:-3}")
env LAB_MOE_PAIRS="${PAIRS:-0,0 1,1 2,2 1,0 2,0 0,1 0,2}" LAB_MOE_ROUNDS="${ROUNDS:-2}" LAB_ATTENTION_ROUNDS=1 "${IO[@]}" \
  bash -c 'source scripts/gpu/step.sh; status=0; step lab-bench.txt ${BENCH_TIMEOUT:-400} "$0" bench 128; exit $status' "$B/gptoss_cuda_lab" || status=1
echo "=== summary"
grep -h "checks:\|FAIL" "$OUT"/lab-check.txt 2>/dev/null
for f in "$OUT"/tiny-*.txt "$OUT"/sanitizer-*.txt; do
  [ -f "$f" ] && { echo "-- $(basename "$f")"; grep -h "vs cpu\|eager vs\|decode check\|ERROR SUMMARY" "$f"; }
done
[ -f "$OUT/sass.txt" ] && grep -A1 "instructions" "$OUT/sass.txt" | grep -v '^--' | sed 's/_ZN6gptoss4cuda45_GLOBAL__N__[0-9a-f_]*moe_mxfp4_cu_[0-9a-f]*//'
grep -h "^copy bandwidth\|^moe \|^g1 gu\|^io[0-9]" "$OUT/lab-bench.txt"
date -u
exit $status
