#!/usr/bin/env bash
# On the GPU machine (NOTES v51, second call; GPTOSS_CUDA_MOE_DOWN is commit e58c955's, removed in the next commit:
# check it out to run this again): down variant 3 (warps copying their own h slice, clusters of 2-slot blocks; 2 =
# the clusters alone) against the default down (0) where the CLI and the batched engine see it
# (GPTOSS_CUDA_MOE_DOWN), one binary. Binaries staged in .gpu-X, carried packed as .gpu-XZ/x.tar.xz.
#   1. the lab's batch-1 rows (positions 4..131) and step-io rows (4..131 and 512..639), pairs interleaved;
#   2. ROUNDS (2) rounds of gptoss bench -p 512 -n 128 -r 3 (tg128 at positions 512..639) per down variant;
#   3. ROUNDS (2) rounds of the lab's default batched engine at 1-8 sequences per down variant.
. "$(dirname "$0")/env.sh" .gpu-X
begin_call .gpu-XZ/x.tar.xz
r20_wait
LAB_MOE_PAIRS="0,0 0,3" LAB_MOE_ROUNDS=2 LAB_STEP_IO=7 LAB_STEP_IO_MOE="0,0 0,3 0,2" LAB_STEP_IO_ROUNDS=3 \
  LAB_DECODE_ONLY=0 lab_rows "copy|gu[0-9] dn[0-9] r|io7 b"
for r in $(seq "${ROUNDS:-2}"); do
  for v in 0 3; do
    echo "== CLI round $r GPTOSS_CUDA_MOE_DOWN=$v $(date -u +%T)"
    GPTOSS_CUDA_MOE_DOWN=$v timeout 200 "$B/gptoss" bench "$R20" --device cuda -p 512 -n 128 -r 3 2>&1 |
      grep -E 'pp512|tg128' || status=1
  done
done
BATCHES="1 2 4 6 8" lab_rounds GPTOSS_CUDA_MOE_DOWN "0 3"
date -u
exit $status
