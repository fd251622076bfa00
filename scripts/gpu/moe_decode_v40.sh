#!/usr/bin/env bash
# On the GPU machine (NOTES v40): the batched-decode MoE tiles with the loads of each stage as per-thread linear
# ranges (moe_gemm.cu kLd 1) against v39's chunk loops, picked by GPTOSS_CUDA_MOE_DECODE_VARIANT (VARIANTS, default
# "0 4 5 7"): 0 v39's loads; 1 linear loads; 4 linear loads with a row's blocks in turn (whole sectors per copy
# instruction); 5 as 4 with 4 MXFP4 blocks a stage in 3 stages; 7 as 4 with 2 blocks a stage in 5 stages (call 2 ran
# "0 1 2 3" of an earlier build: 2 = as 1 in 3 stages, 3 = as 1 with 4 blocks a stage in 3 stages). TILE8_VARIANTS:
# those variants again with 8-slot tiles at 48 and 64 sequences. Call 4: 8 / 9 / 11 = 4 with each block's weight rows
# asked of L2 (cp.async.bulk.prefetch.L2) 2 / 4 / 1 stages ahead of cp.async, 10 = 5 with them 3 stages ahead, 12 = 0
# with them 2 stages ahead.
# Every variant computes the same sums in the same order. Checks per variant (backend_cuda_moe_gemm_test, the tiny
# and tiny_e128 batched decode checks), then ROUNDS rounds of the lab's default engine at BATCHES (8 16 32 64) per
# variant, interleaved; then ncu's throughput and warp-state sections on the MoE launches at 64 sequences for
# NCU_VARIANTS (default "1"). Binaries staged in .gpu-W, carried packed as .gpu-WZ/w.tar.xz.
. "$(dirname "$0")/env.sh" .gpu-W
O=${OUT:-/tmp/v40}
mkdir -p "$O"
unpack_stage .gpu-WZ/w.tar.xz
print_card
for v in ${VARIANTS:-0 4 5 7}; do
  echo "== checks, variant $v"
  export GPTOSS_CUDA_MOE_DECODE_VARIANT=$v
  batched_checks "gemm|decode check"
done
unset GPTOSS_CUDA_MOE_DECODE_VARIANT
lab_rounds GPTOSS_CUDA_MOE_DECODE_VARIANT "${VARIANTS:-0 4 5 7}" 200
for r in $(seq "${ROUNDS:-2}"); do
  for v in ${TILE8_VARIANTS:-}; do  # the 8-slot tiles above 32 sequences too (GPTOSS_CUDA_DECODE_MOE_TILE)
    echo "== round $r variant $v, 8-slot tiles $(date -u +%T)"
    GPTOSS_CUDA_DECODE_MOE_TILE=8 GPTOSS_CUDA_MOE_DECODE_VARIANT=$v LAB_ENGINES=5 LAB_BATCHES="48 64" timeout 200 \
      "$B/gptoss_cuda_lab" batched 1 2>&1 | grep -E "default" || status=1
  done
done
for v in ${NCU_VARIANTS:-1}; do
  echo "== ncu, variant $v $(date -u +%T)"
  GPTOSS_CUDA_MOE_DECODE_VARIANT=$v LAB_ENGINES=5 LAB_BATCHES=64 timeout 200 ncu -k regex:moe_gemm_kernel \
    --launch-skip 300 --launch-count 6 --section SpeedOfLight --section WarpStateStats --section Occupancy \
    --section LaunchStats "$B/gptoss_cuda_lab" batched 1 > "$O/ncu64-v$v.txt" 2>&1 || status=1
  grep -E "moe_gemm_kernel<8|Duration|DRAM Throughput|Compute \(SM\) Throughput|Registers Per|Achieved Occupancy" \
    "$O/ncu64-v$v.txt" | sed 's/  */ /g' | cut -c1-120
done
date -u
exit $status
