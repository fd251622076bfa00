#!/usr/bin/env bash
# On the GPU machine (NOTES v50): where pp512's time goes on the H200. The op profile (GPTOSS_CUDA_PROFILE=1, each op
# synchronized) of gptoss bench -p 512 on the random 20b, then ncu on two consecutive launches of the prefill MoE GEMM
# (moe_gemm_kernel<4, 2, 4, false, 8, 64, ...>: a layer's gate_up and down inside the first pp512 forward, after
# SKIP launches) with the source counters; the report's details and its per-SASS source page (CSV) go to $OUT.
# Binaries staged in .gpu-X, carried packed as .gpu-XZ/x.tar.xz.
. "$(dirname "$0")/env.sh" .gpu-X
OUT=${OUT:-/tmp/v50}
begin_call .gpu-XZ/x.tar.xz
r20_wait
GPTOSS_CUDA_PROFILE=1 timeout 200 "$B/gptoss" bench "$R20" --device cuda -p 512 -n 0 -r 2 > "$OUT/profile.txt" 2>&1 || status=1
grep -E "pp512|ms" "$OUT/profile.txt" | head -40
ncu_kernels prefill Li4ELi2ELi4ELb0ELi8ELi64E "${SKIP:-60}" \
  "Grid Size|Block Size|Registers Per|Duration|DRAM Throughput|L2 Cache Throughput|L1/TEX Cache Throughput|Compute \(SM\)|Issue Slots Busy|Warp Cycles Per Issued|Executed Ipc|Achieved Occupancy|Theoretical Occupancy|Stall|Pipe" \
  "$B/gptoss" bench "$R20" --device cuda -p 512 -n 0 -r 1 --no-warmup
date -u
exit $status
