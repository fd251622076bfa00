#!/usr/bin/env bash
# On the GPU machine (NOTES v40): the batched-decode MoE tiles of v39 (50baa7e's binaries, staged in .gpu-V and
# carried packed as .gpu-VZ/v.tar.xz: `tar -C .gpu-V -cf - bin lib COMMIT | xz -T2 -6 > .gpu-VZ/v.tar.xz`):
#   1. compute-sanitizer memcheck on backend_cuda_moe_gemm_test and the tiny batched decode check (batched.sh);
#   2. the lab's default engine at 32 / 48 / 64 sequences with the MoE tiles of 16 slots (the default above 32
#      sequences) against 8 slots (GPTOSS_CUDA_DECODE_MOE_TILE), 2 rounds interleaved;
#   3. ncu's sections (speed of light, occupancy, warp states, scheduler, memory) on a run of the MoE GEMM's
#      launches at 64 sequences (gate_up and down of two layers, and the dense GEMMs between them).
. "$(dirname "$0")/env.sh" .gpu-V
O=${OUT:-/tmp/v40}
mkdir -p "$O"
unpack_stage .gpu-VZ/v.tar.xz
print_card
if [[ " ${PARTS:-san tiles ncu} " == *" san "* ]]; then
  STAGE_DIR=$S OUT=$O/san scripts/gpu/batched.sh sanitize || status=1
fi
if [[ " ${PARTS:-san tiles ncu} " == *" tiles "* ]]; then
  for r in 1 2; do
    for t in 16 8; do
      echo "== round $r, MoE tiles of $t slots $(date -u +%T)"
      GPTOSS_CUDA_DECODE_MOE_TILE=$t LAB_ENGINES=5 LAB_BATCHES="${BATCHES:-32 48 64}" timeout 200 \
        "$B/gptoss_cuda_lab" batched 1 2>&1 | grep -E "copy|default" || status=1
    done
  done
fi
if [[ " ${PARTS:-san tiles ncu} " == *" ncu "* ]]; then
  echo "== ncu $(date -u +%T)"
  ncu64() {
    LAB_ENGINES=5 LAB_BATCHES=64 timeout 300 ncu -k regex:moe_gemm_kernel --launch-skip "${SKIP:-300}" \
      --launch-count "${COUNT:-12}" --section SpeedOfLight --section Occupancy --section LaunchStats \
      --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis \
      --section ComputeWorkloadAnalysis "$@" "$B/gptoss_cuda_lab" batched 1 > "$O/ncu64.txt" 2>&1
  }
  # --print-details all (the stall reasons' table) is newer than some ncu versions: without it if refused
  ncu64 --print-details all || { tail -3 "$O/ncu64.txt"; ncu64 || status=1; }
  grep -iE "stall|Warp Cycles" "$O/ncu64.txt" | sed 's/  */ /g' | sort | uniq -c | sort -rn | head -40
  grep -E "moe_gemm_kernel|Duration|DRAM Throughput|Memory Throughput|Compute \(SM\)|Registers Per|Achieved Occupancy|Theoretical Occupancy|Block Limit|Issue Slots Busy|No Eligible|Warp Cycles Per Issued|Grid Size|Dynamic Shared" "$O/ncu64.txt" | sed 's/  */ /g' | cut -c1-150
fi
date -u
exit $status
