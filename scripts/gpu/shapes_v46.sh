#!/usr/bin/env bash
# On the GPU machine (NOTES v46; the switches are in commit ee71d4c only, removed in the next commit: check it
# out to run this again): other block shapes for the batched MoE decode tiles, picked per launch in one binary.
# GPTOSS_CUDA_MOE_DECODE_SHAPE (16-slot tiles, 33+ sequences): 0 = 8 warps of 16 rows (128 rows, the default); 1 = 4
# warps of 32 rows (128 rows); 2 = 1 with 4 MXFP4 blocks a stage; 3 = 8 warps of 32 rows (256 rows); 4 = 8 warps, 4
# along the rows (32 each) x 2 along the slots; 5 = 1 with 8 blocks a stage; 6 = 4 warps of 48 rows; 7 = 2 warps of 64
# rows. GPTOSS_CUDA_MOE_DECODE_SHAPE8 (8-slot tiles, 9-32 sequences): 0 = 8 warps of 16 rows (the default); 1 = 4
# warps of 32 rows, registers for 4 blocks an SM; 2 = the same for 5. Binaries staged in .gpu-X, carried packed as
# .gpu-XZ/x.tar.xz.
#   1. the tiny and tiny_e128 batched decode checks against the exact CPU path at batch 16 and 64 with each shape
#      (the same sums in the same order: the same numbers expected); memcheck on the tiny check with SHAPE / SHAPE8;
#   2. the random 20b (written here) against the exact CPU path at batch 16 and 64 with SHAPE / SHAPE8;
#   3. ROUNDS (3) rounds of the lab's default engine at 16 32 64 sequences, the shapes interleaved;
#   4. one round of gptoss bench --parallel 1,16,64 with the default shapes and with SHAPE / SHAPE8.
. "$(dirname "$0")/env.sh" .gpu-X
unpack_stage .gpu-XZ/x.tar.xz
print_card
r20_start
SHAPES=${SHAPES:-1 5 6 7}
SHAPE=${SHAPE:-1}
SHAPE8=${SHAPE8:-1}
for v in $SHAPES 0; do
  echo "== GPTOSS_CUDA_MOE_DECODE_SHAPE=$v"
  GPTOSS_CUDA_MOE_DECODE_SHAPE=$v batched_checks "batch (16|64), moe gemm16|decode check" 16,64
done
for v in 1 2; do
  echo "== GPTOSS_CUDA_MOE_DECODE_SHAPE8=$v"
  GPTOSS_CUDA_MOE_DECODE_SHAPE8=$v batched_checks "batch (16|64), moe gemm8 |decode check" 16,64
done
GPTOSS_CUDA_MOE_DECODE_SHAPE=$SHAPE GPTOSS_CUDA_MOE_DECODE_SHAPE8=$SHAPE8 tiny_memcheck "batch 64, moe gemm(8 |16)" \
  --batch 16,64 --seqs 4
r20_wait
GPTOSS_CUDA_MOE_DECODE_SHAPE8=$SHAPE8 r20_check GPTOSS_CUDA_MOE_DECODE_SHAPE "$SHAPE" "$R20" "16,64"
ROUNDS=${ROUNDS:-3} BATCHES="16 32 64" lab_rounds GPTOSS_CUDA_MOE_DECODE_SHAPE "0 $SHAPES"
ROUNDS=${ROUNDS:-3} BATCHES="16 32" lab_rounds GPTOSS_CUDA_MOE_DECODE_SHAPE8 "0 1 2"
cli_with "GPTOSS_CUDA_MOE_DECODE_SHAPE=0 GPTOSS_CUDA_MOE_DECODE_SHAPE8=0" \
  "GPTOSS_CUDA_MOE_DECODE_SHAPE=$SHAPE GPTOSS_CUDA_MOE_DECODE_SHAPE8=$SHAPE8"
date -u
exit $status
