#!/usr/bin/env bash
# On the GPU machine (NOTES v48; the switches are commit c38c48a, removed in the next commit: check it out to run
# this again): the batch-1 MoE kernels with each warp's second batch of chunks copied into shared
# memory by cp.async beside the first batch's register loads (gate_up variant 2, down variant 1; lab pairs "GU,DN",
# the CLI's GPTOSS_CUDA_MOE_ASYNC2 mask: 1 gate_up, 2 down) against the defaults (0,0) in one binary. Binaries staged
# in .gpu-X, carried packed as .gpu-XZ/x.tar.xz. Long outputs go to $OUT (they come back whole).
#   1. backend_cuda_test; the tiny decode check against the exact CPU path with each pair (the same sums in the same
#      order: the default's numbers expected); memcheck on it with 2,1;
#   2. the random 20b (written here) against the exact CPU path with 0,0 and 2,1;
#   3. ROUNDS (3) rounds of the lab's batch-1 decode rows (positions 4..131), the pairs interleaved;
#   4. ROUNDS (2) rounds of gptoss bench -p 512 -n 128 (tg128 at positions 512..639) per mask.
. "$(dirname "$0")/env.sh" .gpu-X
begin_call .gpu-XZ/x.tar.xz
cuda_tests
tiny_shapes "1,0,0 1,2,0 1,0,1 1,2,1" --batch 1,4 --seqs 2
tiny_memcheck "" --shapes 1,2,1
r20_wait
r20_shapes "1,0,0 1,2,1"
LAB_MOE_PAIRS="0,0 2,0 0,1 2,1" LAB_MOE_ROUNDS=${ROUNDS:-3} lab_rows
for r in $(seq "${CLI_ROUNDS:-2}"); do
  for m in 0 1 2 3; do
    echo "== CLI round $r GPTOSS_CUDA_MOE_ASYNC2=$m $(date -u +%T)"
    GPTOSS_CUDA_MOE_ASYNC2=$m timeout 200 "$B/gptoss" bench "$R20" --device cuda -p 512 -n 128 -r 3 2>&1 |
      grep -E 'pp512|tg128' || status=1
  done
done
date -u
exit $status
