#!/usr/bin/env bash
# On the GPU machine (NOTES v50): prefill modes compared (MODES, environment assignments; default: the MoE GEMM's
# shape 4 against shape 5, its scale bytes by cp.async, and the dense projections on the x16 GEMM instead of cuBLAS,
# GPTOSS_CUDA_PREFILL_DENSE=x16; SHAPES: the GEMM test's shapes). Binaries staged in .gpu-X, carried packed as
# .gpu-XZ/x.tar.xz.
#   1. backend_cuda_moe_gemm_test with shapes 4 and 5, backend_cuda_test;
#   2. the random 20b's 70-token prompt in one forward, each mode against the exact CPU path and bit for bit against
#      the first mode;
#   3. ROUNDS (3) rounds of gptoss bench -p 512 -n 0 -r 5, the modes interleaved.
. "$(dirname "$0")/env.sh" .gpu-X
begin_call .gpu-XZ/x.tar.xz
for sh in ${SHAPES:-4 5}; do
  GPTOSS_CUDA_MOE_GEMM_SHAPE=$sh "$B/backend_cuda_moe_gemm_test" 2>&1 | grep -E "^\[  (PASSED|FAILED) |Failure" || status=1
done
"$B/backend_cuda_test" 2>&1 | grep -E "^\[  (PASSED|FAILED) |Failure" || status=1
r20_wait
modes=${MODES:-GPTOSS_CUDA_MOE_GEMM_SHAPE=4 GPTOSS_CUDA_MOE_GEMM_SHAPE=5 GPTOSS_CUDA_PREFILL_DENSE=x16}
# shellcheck disable=SC2046  # one word per mode
logits70 $(for m in $modes; do echo "${m#*=}=$m:gptoss"; done)
for r in $(seq "${ROUNDS:-3}"); do
  for m in $modes; do
    echo "== round $r $m $(date -u +%T)"
    env "$m" timeout 200 "$B/gptoss" bench "$R20" --device cuda -p 512 -n 0 -r 5 2>&1 | grep -E 'pp512' || status=1
  done
done
date -u
exit $status
