#!/usr/bin/env bash
# On the GPU machine (NOTES v52; the switches are in commits 8f3810f and 0934c8b (the diagnostic's zeroing), removed in
# the commit after: check 0934c8b out to run this again): router variant 5 (the cluster kernel with 16 warps a block: 32 experts in a
# cluster of 2 blocks instead of 4) against variant 4, and the diagnostic GPTOSS_CUDA_DIAG_X16_DIV=N (wrong results by
# design: gate_up's blocks copy only 1 / N of the x16 row), in one binary. Binaries staged in .gpu-X, carried packed as
# .gpu-XZ/x.tar.xz. Long outputs go to $OUT.
#   1. the lab's checks (variant 5 against the CPU double reference); the tiny decode check with router 5, and
#      memcheck on it; the random 20b against the exact CPU path with router 5;
#   2. ROUNDS (3) rounds of the lab's batch-1 decode rows, routers 4 and 5 interleaved;
#   3. ROUNDS (3) rounds of the lab's default batch-1 row with GPTOSS_CUDA_DIAG_X16_DIV = 1, 2, 4 (the first call's
#      binary left the rest of the row unset: its garbage logits ended the lab's runs, no rows; the second zeroes it).
# PART=diag: step 3 alone.
. "$(dirname "$0")/env.sh" .gpu-X
if [ "${PART:-all}" = all ]; then
  begin_call .gpu-XZ/x.tar.xz
else  # no random 20b: its writer would share the CPU with the timed rows
  begin_lab_call .gpu-XZ/x.tar.xz
fi
if [ "${PART:-all}" = all ]; then
lab_checks
tiny_shapes 1,0,1,5
tiny_memcheck "" --shapes 1,0,1,5
LAB_MOE_PAIRS="0,1" LAB_ROUTERS="4 5" LAB_MOE_ROUNDS=${ROUNDS:-3} lab_rows
fi
for r in $(seq "${ROUNDS:-3}"); do
  for d in 1 2 4; do
    echo "== diag round $r GPTOSS_CUDA_DIAG_X16_DIV=$d"
    GPTOSS_CUDA_DIAG_X16_DIV=$d LAB_DECODE_ONLY=1 timeout 100 "$B/gptoss_cuda_lab" bench 128 2>&1 |
      grep -E "gu[0-9] dn|rror|abort" || status=1
  done
done
[ "${PART:-all}" = all ] || exit $status
r20_wait
r20_shapes 1,0,1,5
date -u
exit $status
