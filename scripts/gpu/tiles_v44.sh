#!/usr/bin/env bash
# On the GPU machine (NOTES v44): where the batched MoE decode tiles' warps wait, per SASS instruction. ncu on two
# consecutive launches of the 16-slot decode tile (moe_gemm_kernel<8, 1, 2, false, 8, 16, 6, 3, 2, true>: gate_up and
# down at 64 sequences in the lab's default engine), with the source counters (warp-state samples per instruction);
# the report's details and its per-SASS source page (CSV) are written to $OUT. Binaries staged in .gpu-U, carried
# packed as .gpu-UZ/u.tar.xz.
. "$(dirname "$0")/env.sh" .gpu-U
O=${OUT:-/tmp/v44}
mkdir -p "$O"
unpack_stage .gpu-UZ/u.tar.xz
print_card
ncu --version | tail -1
LAB_ENGINES=5 LAB_BATCHES=64 timeout 400 ncu -f --kernel-name-base mangled -k regex:Li16ELi6ELi3ELi2ELb1E --launch-skip "${SKIP:-40}" \
  --launch-count 2 --section SpeedOfLight --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis \
  --section WarpStateStats --section SchedulerStats --section Occupancy --section LaunchStats --section SourceCounters \
  --section InstructionStats -o "$O/tiles64" "$B/gptoss_cuda_lab" batched 1 > "$O/ncu-run.txt" 2>&1 || status=1
tail -3 "$O/ncu-run.txt"
ncu -i "$O/tiles64.ncu-rep" --page details --print-details all > "$O/details.txt" 2>&1 || status=1
ncu -i "$O/tiles64.ncu-rep" --page source --csv --print-source sass > "$O/sass.csv" 2>&1 || status=1
ls -la "$O"
grep -E "Grid Size|Duration|Memory Throughput|DRAM Throughput|L2 Cache Throughput|L1/TEX Cache Throughput|Compute \(SM\)|Issue Slots Busy|Warp Cycles Per Issued|Executed Ipc|L2 Hit Rate|Mem Busy|Max Bandwidth|Mem Pipes Busy|Shared Memory" "$O/details.txt" | sed 's/  */ /g' | cut -c1-120
head -c 600 "$O/sass.csv"; echo
gzip -f "$O/sass.csv"
date -u
exit $status
