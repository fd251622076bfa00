#!/usr/bin/env bash
# On the GPU machine (NOTES v57; the tidy is commit 24d5f72, reverted in the next commit: check it out to run this
# again): the review's tidy of down_kernel (one cp.async piece loop; the epilogue reusing its warp's expert id) against
# run X's binary, gptoss_cuda_lab_old (copied into the staged bin/ before packing). The same
# sums: the same numbers expected. Binaries staged in .gpu-X, carried packed as .gpu-XZ/x.tar.xz.
#   1. backend_cuda_test, the lab's checks (also under memcheck), the tiny decode check at batch 1 and 4 (both down
#      kernels), memcheck on it;
#   2. ROUNDS (3) rounds of the lab's batch-1 rows (down 1 and 0) from each binary, interleaved.
. "$(dirname "$0")/env.sh" .gpu-X
begin_lab_call .gpu-XZ/x.tar.xz
cuda_tests
lab_checks
compute-sanitizer --tool memcheck --leak-check no "$B/gptoss_cuda_lab" check 2>&1 | grep -E "ERROR SUMMARY|checks:" ||
  status=1
tiny_shapes "1,0,1 1,0,0" --batch 1,4 --seqs 2
tiny_memcheck "" --batch 1,4 --seqs 2
LAB_MOE_PAIRS="0,1 0,0" lab_bin_rounds "gptoss_cuda_lab_old gptoss_cuda_lab"
date -u
exit $status
