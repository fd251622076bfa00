#!/usr/bin/env bash
# On the GPU machine (NOTES v50): the prefill MoE GEMM with each column tile's block accumulators added right after
# its MMAs (the same bits), in its default shape and as shape 4 (3 blocks an SM, 2 stages:
# GPTOSS_CUDA_MOE_GEMM_SHAPE=4), against the binaries before the change ($B/gptoss-old, $B/gptoss_cuda_lab-old).
# Binaries staged in .gpu-X, carried packed as .gpu-XZ/x.tar.xz.
#   1. backend_cuda_moe_gemm_test, backend_cuda_test; the tiny batched decode check;
#   2. the random 20b, a 70-token prompt in one forward: logits of old / new / new shape 4, bit for bit, and
#      against the exact CPU path;
#   3. ROUNDS (3) rounds of gptoss bench -p 512 -n 0 -r 5: old, new, new shape 4;
#   4. two rounds of the lab's batched rows (8 16 32 64 sequences), old and new binaries (the decode tiles share
#      the change).
. "$(dirname "$0")/env.sh" .gpu-X
begin_call .gpu-XZ/x.tar.xz
"$B/backend_cuda_moe_gemm_test" 2>&1 | grep -E "^\[  (PASSED|FAILED) |Failure" || status=1
"$B/backend_cuda_test" 2>&1 | grep -E "^\[  (PASSED|FAILED) |Failure" || status=1
GPTOSS_CUDA_MOE_GEMM_SHAPE=4 "$B/backend_cuda_moe_gemm_test" 2>&1 | grep -E "^\[  (PASSED|FAILED) |Failure" || status=1
batched_checks "batch 64|decode check" 1,16,64
r20_wait
logits70 old=-:gptoss-old new=-:gptoss new4=GPTOSS_CUDA_MOE_GEMM_SHAPE=4:gptoss
for r in $(seq "${ROUNDS:-3}"); do
  for v in old new new4; do
    bin=$B/gptoss; [ $v = old ] && bin=$B/gptoss-old
    sh=0; [ $v = new4 ] && sh=4
    echo "== round $r $v $(date -u +%T)"
    GPTOSS_CUDA_MOE_GEMM_SHAPE=$sh timeout 200 "$bin" bench "$R20" --device cuda -p 512 -n 0 -r 5 2>&1 | grep -E 'pp512' || status=1
  done
done
for r in 1 2; do
  for v in -old ""; do
    echo "== lab batched round $r gptoss_cuda_lab$v $(date -u +%T)"
    LAB_ENGINES=5 LAB_BATCHES="8 16 32 64" timeout 120 "$B/gptoss_cuda_lab$v" batched 1 2>&1 | grep -E "copy|default" || status=1
  done
done
date -u
exit $status
