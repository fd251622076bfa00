#!/usr/bin/env bash
# On the GPU machine (NOTES v45; the kernel and its switch are commit 19a9893, removed in the next commit: check it out
# to run this again): the batched MoE decode tiles by moe_direct_kernel (every operand straight into
# registers, no shared memory, no barriers; GPTOSS_CUDA_MOE_DECODE_DIRECT 1..3 = its shapes, 0 = the tile kernel,
# the default) in one binary. Binaries staged in .gpu-X, carried packed as .gpu-XZ/x.tar.xz.
#   1. the tiny and tiny_e128 batched decode checks against the exact CPU path at batch 1 / 8 / 16 / 64 with each
#      form (the same sums in the same order: the same numbers expected); memcheck on the tiny check with 1;
#   2. the random 20b (written here) against the exact CPU path at batch 16 and 64 with form 1;
#   3. ROUNDS (2) rounds of the lab's default engine at 8 16 32 64 sequences, the forms interleaved;
#   4. one round of gptoss bench --parallel 1,16,64 with each form.
. "$(dirname "$0")/env.sh" .gpu-X
unpack_stage .gpu-XZ/x.tar.xz
print_card
r20_start
for v in ${FORMS:-1 2 3} 0; do
  echo "== GPTOSS_CUDA_MOE_DECODE_DIRECT=$v"
  GPTOSS_CUDA_MOE_DECODE_DIRECT=$v batched_checks "moe gemm(8 |16)|decode check|PASSED|FAILED"
done
GPTOSS_CUDA_MOE_DECODE_DIRECT=1 tiny_memcheck "batch 16, moe gemm(8 |16)" --batch 8,16 --seqs 4
r20_wait
r20_check GPTOSS_CUDA_MOE_DECODE_DIRECT 1 "$R20" "16,64"
lab_rounds GPTOSS_CUDA_MOE_DECODE_DIRECT "0 ${FORMS:-1 2 3}"
cli_with $(for v in 0 ${FORMS:-1 2 3}; do echo GPTOSS_CUDA_MOE_DECODE_DIRECT=$v; done)
date -u
exit $status
