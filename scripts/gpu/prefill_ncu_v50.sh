#!/usr/bin/env bash
# On the GPU machine (NOTES v50): where pp512's time goes on the H200. The op profile (GPTOSS_CUDA_PROFILE=1, each op
# synchronized) of gptoss bench -p 512 on the random 20b, then ncu on two consecutive launches of the prefill MoE GEMM
# (moe_gemm_kernel<4, 2, 4, false, 8, 64, ...>: a layer's gate_up and down inside the first pp512 forward, after
# SKIP launches) with the source counters; the report's details and its per-SASS source page (CSV) go to $OUT.
# Binaries staged in .gpu-X, carried packed as .gpu-XZ/x.tar.xz.
. "$(dirname "$0")/env.sh" .gpu-X
O=${OUT:-/tmp/v50}
mkdir -p "$O"
unpack_stage .gpu-XZ/x.tar.xz
print_card
ncu --version | tail -1
r20_start
r20_wait
GPTOSS_CUDA_PROFILE=1 timeout 200 "$B/gptoss" bench "$R20" --device cuda -p 512 -n 0 -r 2 > "$O/profile.txt" 2>&1 || status=1
grep -E "pp512|ms" "$O/profile.txt" | head -40
timeout 400 ncu -f --kernel-name-base mangled -k regex:Li4ELi2ELi4ELb0ELi8ELi64E --launch-skip "${SKIP:-60}" \
  --launch-count 2 --section SpeedOfLight --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis \
  --section WarpStateStats --section SchedulerStats --section Occupancy --section LaunchStats --section SourceCounters \
  --section InstructionStats -o "$O/prefill" "$B/gptoss" bench "$R20" --device cuda -p 512 -n 0 -r 1 --no-warmup \
  > "$O/ncu-run.txt" 2>&1 || status=1
tail -3 "$O/ncu-run.txt"
ncu -i "$O/prefill.ncu-rep" --page details --print-details all > "$O/details.txt" 2>&1 || status=1
ncu -i "$O/prefill.ncu-rep" --page source --csv --print-source sass > "$O/sass.csv" 2>&1 || status=1
grep -E "Grid Size|Block Size|Registers Per|Duration|DRAM Throughput|L2 Cache Throughput|L1/TEX Cache Throughput|Compute \(SM\)|Issue Slots Busy|Warp Cycles Per Issued|Executed Ipc|Achieved Occupancy|Theoretical Occupancy|Stall|Pipe" "$O/details.txt" | sed 's/  */ /g' | cut -c1-140 | head -80
gzip -f "$O/sass.csv"
date -u
exit $status
