#!/usr/bin/env bash
# On the GPU machine (NOTES v47; the switches are in commit 98061ea only, removed in the next commit: check it out
# to run this again): v46's 4-warp shape for the batched decode's dense tiles, and 3-stage MoE decode tiles, picked per
# launch in one binary. GPTOSS_CUDA_DENSE_DECODE_SHAPE (16 and 32-slot dense tiles: q/k/v/o and the unembedding at
# 8-32 sequences): 0 = 8 warps of 16 rows, 3 stages (the default); 1 = 4 warps of 32 rows, 3 stages; 2 = 1 with 2
# stages. GPTOSS_CUDA_MOE_DECODE_SHAPE: 0 = v46's tiles (KC 6, 2 stages, the default); 1 = KC 4, 3 stages. Binaries
# staged in .gpu-X, carried packed as .gpu-XZ/x.tar.xz.
#   1. the tiny and tiny_e128 batched decode checks against the exact CPU path at batch 16, 32, 64 with each switch
#      (the same sums in the same order: the same numbers expected); memcheck on the tiny check with both at 1;
#   2. the random 20b (written here) against the exact CPU path at batch 16 and 64 with both at 1;
#   3. ROUNDS (3) rounds of the lab's default engine at 16 32 64 sequences, the values interleaved;
#   4. gptoss bench --parallel 1,16,64 with the defaults and with both at 1.
. "$(dirname "$0")/env.sh" .gpu-X
unpack_stage .gpu-XZ/x.tar.xz
print_card
r20_start
for v in "1 0" "2 0" "0 1" "0 0"; do
  set -- $v
  echo "== GPTOSS_CUDA_DENSE_DECODE_SHAPE=$1 GPTOSS_CUDA_MOE_DECODE_SHAPE=$2"
  GPTOSS_CUDA_DENSE_DECODE_SHAPE=$1 GPTOSS_CUDA_MOE_DECODE_SHAPE=$2 batched_checks \
    "batch (16|32|64), moe gemm(8 |16)|decode check" 16,32,64
done
GPTOSS_CUDA_DENSE_DECODE_SHAPE=1 GPTOSS_CUDA_MOE_DECODE_SHAPE=1 tiny_memcheck "batch 64, moe gemm(8 |16)" \
  --batch 16,64 --seqs 4
r20_wait
GPTOSS_CUDA_MOE_DECODE_SHAPE=1 r20_check GPTOSS_CUDA_DENSE_DECODE_SHAPE 1 "$R20" "16,64"
ROUNDS=${ROUNDS:-3} BATCHES="16 32 64" lab_rounds GPTOSS_CUDA_DENSE_DECODE_SHAPE "0 1 2"
ROUNDS=${ROUNDS:-3} BATCHES="16 32 64" lab_rounds GPTOSS_CUDA_MOE_DECODE_SHAPE "0 1"
cli_with "GPTOSS_CUDA_DENSE_DECODE_SHAPE=0 GPTOSS_CUDA_MOE_DECODE_SHAPE=0" \
  "GPTOSS_CUDA_DENSE_DECODE_SHAPE=1 GPTOSS_CUDA_MOE_DECODE_SHAPE=1"
date -u
exit $status
