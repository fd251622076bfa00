#!/usr/bin/env bash
# Needs the lab switches NOTES v39 describes (GPTOSS_CUDA_MOE_DECODE_VARIANT / GPTOSS_CUDA_DENSE_DECODE_VARIANT in
# moe_gemm.cu), which were removed when the winners became the code: kept as the record of how v39 was measured.
# On the GPU machine (NOTES v39): the batched-decode MoE GEMM tiles (moe_gemm.cu, 8 / 16 slots) in the shapes that
# GPTOSS_CUDA_MOE_DECODE_VARIANT picks (VARIANTS, default 0..5): 0 as before (8 warps, 128 rows, 2 MXFP4 blocks a
# stage); 1 registers capped for 4 blocks an SM; 2 4 blocks a stage; 3 both; 4 4-warp blocks of 64 rows, 8 an SM;
# 5 as 4 with 4 blocks a stage. Every variant computes the same sums in the same order. Checks per variant
# (backend_cuda_moe_gemm_test, the tiny and tiny_e128 batched decode checks), then ROUNDS rounds of the lab's
# default engine at 16 / 32 / 64 sequences per variant, interleaved.
. "$(dirname "$0")/env.sh" .gpu-V
date -u
for v in ${VARIANTS:-0 1 2 3 4 5}; do
  echo "== checks, variant $v"
  export GPTOSS_CUDA_MOE_DECODE_VARIANT=$v
  batched_checks
done
for r in $(seq "${ROUNDS:-2}"); do
  for v in ${VARIANTS:-0 1 2 3 4 5}; do
    echo "== round $r variant $v $(date -u +%T)"
    GPTOSS_CUDA_MOE_DECODE_VARIANT=$v LAB_ENGINES=5 LAB_BATCHES="${BATCHES:-16 32 64}" timeout 200 \
      "$B/gptoss_cuda_lab" batched 1 2>&1 | grep -E "copy|default" || status=1
  done
done
date -u
exit $status
