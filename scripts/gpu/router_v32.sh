#!/usr/bin/env bash
# On the GPU machine (NOTES.md v32): router variant 5 (no router kernel: the sums in o_proj, the top k in the MoE
# kernels) against the default 4 in one device-tool call, from a dir staged by scripts/gpu/stage.sh with
# TARGETS="gptoss_cuda_lab gptoss_cuda_decode_check backend_cuda_test": the lab's checks (check_router_sums vs the
# CPU double reference, two runs the same bits), backend_cuda_test, the tiny decode check with r4 and r5 and
# compute-sanitizer memcheck with r5, then the lab bench: standalone rows (o_proj+sums, gate_up routed), decode
# rows r4 / r5 interleaved (MoE pair 0,0 at 4..131, ROUNDS rounds) and run S's step-io rows (io7, 4..131 and
# 512..639, r4 / r5 interleaved, IO_ROUNDS rounds). A summary of the key lines at the end.
set -uo pipefail
[ -f scripts/gpu/step.sh ] || cd "$(dirname "$0")/../.."  # run from the repo root (the script may lie in the stage dir)
S=${STAGE_DIR:-.gpu-G2}
B=$S/bin
OUT=${OUT:-/tmp/gptoss-v32}
mkdir -p "$OUT"
source scripts/gpu/step.sh
staged_env
step lab-check.txt 120 "$B/gptoss_cuda_lab" check
step cuda-test.txt 120 "$B/backend_cuda_test"
for r in 4 5 54; do
  step tiny-r$r.txt 60 "$B/gptoss_cuda_decode_check" tests/data/tiny/model --tokens $TINY --tol 1e-4 --shapes 1,0,0,$r
done
step san-r5.txt 120 compute-sanitizer --tool memcheck --leak-check no "$B/gptoss_cuda_decode_check" \
  tests/data/tiny/model --tokens 358,318,174,506,238 --tol 1e-4 --shapes 1,0,0,${SAN_R:-54}
if [ "${BENCH:-1}" = 1 ]; then
  LAB_MOE_PAIRS="0,0" LAB_ROUTERS="${ROUTERS:-4 5}" LAB_MOE_ROUNDS=${ROUNDS:-2} LAB_STEP_IO=7 LAB_STEP_IO_ROUTERS="${IO_ROUTERS:-4 5}" \
    LAB_STEP_IO_ROUNDS=${IO_ROUNDS:-2} step lab-bench.txt 300 "$B/gptoss_cuda_lab" bench
fi
echo "=== summary"
grep -h "checks:\|router sums\|FAIL" "$OUT/lab-check.txt" | grep -v "H=64\|H=512\|64x64\|512x256\|E=8\|E=24" | head -40
grep -h "PASS\|FAIL\|tests" "$OUT/cuda-test.txt" | tail -3
for f in tiny-r4 tiny-r5 tiny-r54 san-r5; do echo "-- $f"; grep -h "kernel shapes\|vs cpu\|eager vs\|decode check\|ERROR SUMMARY\|error" "$OUT/$f.txt"; done
[ -f "$OUT/lab-bench.txt" ] && grep -h "^copy bandwidth\|^device\|o_proj+residual\|moe gate_up\|router+rms\|^g1 gu\|^io7" "$OUT/lab-bench.txt"
date -u
exit $status
