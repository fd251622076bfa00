#!/usr/bin/env bash
# On the GPU machine (NOTES v44): where the batched MoE decode tiles' warps wait, per SASS instruction. ncu on two
# consecutive launches of the 16-slot decode tile (moe_gemm_kernel<8, 1, 2, false, 8, 16, 6, 3, 2, true>: gate_up and
# down at 64 sequences in the lab's default engine), with the source counters (warp-state samples per instruction);
# the report's details and its per-SASS source page (CSV) are written to $OUT. Binaries staged in .gpu-U, carried
# packed as .gpu-UZ/u.tar.xz.
. "$(dirname "$0")/env.sh" .gpu-U
OUT=${OUT:-/tmp/v44}
mkdir -p "$OUT"
unpack_stage .gpu-UZ/u.tar.xz
print_card
LAB_ENGINES=5 LAB_BATCHES=64 ncu_kernels tiles64 Li16ELi6ELi3ELi2ELb1E "${SKIP:-40}" \
  "Grid Size|Duration|Memory Throughput|DRAM Throughput|L2 Cache Throughput|L1/TEX Cache Throughput|Compute \(SM\)|Issue Slots Busy|Warp Cycles Per Issued|Executed Ipc|L2 Hit Rate|Mem Busy|Max Bandwidth|Mem Pipes Busy|Shared Memory" \
  "$B/gptoss_cuda_lab" batched 1
ls -la "$OUT"
date -u
exit $status
