#!/usr/bin/env bash
# Needs the change NOTES v37 describes (not committed: the env switch below is not in the code on main).
# On the GPU machine (NOTES v37): the decode tiles' pipeline stages of the grouped MoE GEMM (moe_gemm.cu,
# GPTOSS_CUDA_MOE_GEMM_STAGES = 3, the old count, or 4 / 6 / 8). The tiny checkpoint's batched decode check
# and backend_cuda_moe_gemm_test with every count, then `gptoss_cuda_lab batched 1` per count (random 20b on
# the device; tok/s of all sequences at batch 1..64), the counts in STAGES order, ROUNDS times.
. "$(dirname "$0")/env.sh" .gpu-B
TOK=358,318,174,506,238,110,432
for st in ${STAGES:-3 4 6 8}; do
  echo "== stages $st"
  GPTOSS_CUDA_MOE_GEMM_STAGES=$st "$B/backend_cuda_moe_gemm_test" 2>&1 | grep -E "^\[  (PASSED|FAILED) " || status=1
  GPTOSS_CUDA_MOE_GEMM_STAGES=$st "$B/gptoss_cuda_decode_check" tests/data/tiny/model --tokens $TOK --tol 1e-4 \
    --batch 1,8,16,64 --seqs 8 2>&1 | grep -E "batch (16|64)|decode check" || status=1
done
for r in $(seq "${ROUNDS:-1}"); do
  for st in ${STAGES:-3 4 6 8}; do
    echo "== round $r stages $st $(date -u +%T)"
    GPTOSS_CUDA_MOE_GEMM_STAGES=$st timeout 200 "$B/gptoss_cuda_lab" batched 1 2>&1 |
      grep -E "copy|default" || status=1
  done
done
exit $status
