#!/usr/bin/env bash
# On the GPU machine (NOTES.md v17): router variant 4 against the default 2 in one device-tool call, from a
# dir staged by scripts/gpu/stage.sh with TARGETS="gptoss_cuda_lab gptoss_cuda_decode_check" and
# EXTRA_TARGETS=gptoss_cuda_timeline: the lab's checks (every router kernel vs the CPU double reference, and
# r4 == r2 bit for bit), the 27-token tiny decode check and compute-sanitizer memcheck with r4, the lab bench
# (standalone router rows r2 / r4 twice, interleaved; whole-step decode rows r2 / r4, ROUNDS rounds, default 3),
# and the instrumented timeline under r2 and r4. A summary of the key lines at the end. (The v17 experiment
# ran this with a variant 5 beside them, since removed: NOTES v17.)
. "$(dirname "$0")/env.sh" .gpu-D2
OUT=${OUT:-/tmp/gptoss-router}
mkdir -p "$OUT"
source "$(dirname "$0")/step.sh"
staged_env
step lab-check.txt 100 "$B/gptoss_cuda_lab" check
LAB_MOE_PAIRS="0,0" LAB_ROUTERS="2 4" LAB_MOE_ROUNDS=${ROUNDS:-3} step lab-bench.txt 170 "$B/gptoss_cuda_lab" bench
for r in 4; do
  step tiny-r$r.txt 60 "$B/gptoss_cuda_decode_check" tests/data/tiny/model --tokens $TINY --tol 1e-4 --shapes 1,0,0,$r
  step san-r$r.txt 90 compute-sanitizer --tool memcheck --leak-check no "$B/gptoss_cuda_decode_check" \
    tests/data/tiny/model --tokens 358,318,174,506,238 --tol 1e-4 --shapes 1,0,0,$r
done
if [ -x "$B/gptoss_cuda_timeline" ]; then
  step timeline-r2.txt 40 "$B/gptoss_cuda_timeline" 5 0 0 2
  step timeline-r4.txt 40 "$B/gptoss_cuda_timeline" 5 0 0 4
fi
echo "=== summary"
grep -h "checks:\|router\|FAIL" "$OUT/lab-check.txt" | head -40
for f in tiny-r4 san-r4; do echo "-- $f"; grep -h "kernel shapes\|vs cpu\|eager vs\|decode check\|ERROR SUMMARY" "$OUT/$f.txt"; done
grep -h "^copy bandwidth\|^device\|router\|^g1 gu" "$OUT/lab-bench.txt"
for r in 2 4; do
  [ -f "$OUT/timeline-r$r.txt" ] && { echo "-- timeline r$r"; grep -h -A10 "^mean over" "$OUT/timeline-r$r.txt" | grep -i "^router\|^kernel\|^mean"
    grep -h "^per layer\|^decode tok/s" "$OUT/timeline-r$r.txt"; }
done
date -u
exit $status
