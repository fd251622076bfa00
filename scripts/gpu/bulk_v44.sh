#!/usr/bin/env bash
# On the GPU machine (NOTES v44): the batched MoE decode tiles with each stage's weight rows and slot rows by the
# bulk-copy engine (GPTOSS_CUDA_MOE_DECODE_BULK: 1 = the 16-slot tiles, 2 = the 8-slot ones too; 0 = cp.async, the
# default) in one binary (the switch and the kernel form were removed after the call: NOTES v44). Binaries staged in
# .gpu-X, carried packed as .gpu-XZ/x.tar.xz.
#   1. the tiny and tiny_e128 batched decode checks against the exact CPU path at batch 1 / 8 / 16 / 64 with each
#      form (the same sums in the same order: the same numbers expected); memcheck on the tiny check with 1 and 2;
#   2. the random 20b (written here) against the exact CPU path at batch 16 and 64 with form 2;
#   3. ROUNDS (2) rounds of the lab's default engine at 8 16 32 64 sequences, the forms interleaved;
#   4. one round of gptoss bench --parallel 1,16,64 with each form.
. "$(dirname "$0")/env.sh" .gpu-X
unpack_stage .gpu-XZ/x.tar.xz
print_card
r20_start
for v in 1 2 0; do
  echo "== GPTOSS_CUDA_MOE_DECODE_BULK=$v"
  GPTOSS_CUDA_MOE_DECODE_BULK=$v batched_checks "moe gemm(8 |16)|decode check|PASSED|FAILED"
done
for v in 1 2; do
  GPTOSS_CUDA_MOE_DECODE_BULK=$v compute-sanitizer --tool memcheck --leak-check no "$B/gptoss_cuda_decode_check" \
    tests/data/tiny/model --tokens 358,318,174,506,238 --tol 1e-4 --batch 8,16 --seqs 4 2>&1 \
    | grep -E "batch 16, moe gemm(8 |16)|ERROR SUMMARY" || status=1
done
r20_wait
r20_check GPTOSS_CUDA_MOE_DECODE_BULK 2 "$R20" "16,64"
lab_rounds GPTOSS_CUDA_MOE_DECODE_BULK "0 1 2"
cli_with GPTOSS_CUDA_MOE_DECODE_BULK={0,1,2}
date -u
exit $status
