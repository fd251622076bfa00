#!/usr/bin/env bash
# On the GPU machine (NOTES v43): the 16-slot MoE decode tiles with each stage's scale bytes in its weight rows'
# padding (no scale array in shared memory), against the scale array (GPTOSS_CUDA_MOE_DECODE_SCALES=0) in the same
# binary: 1 = 6 MXFP4 blocks a stage, 4 blocks an SM; 2 = 6, 3 blocks an SM; 3 = 8, 3; 4 = 7, 3 (the switch was
# removed after the call: NOTES v43). Binaries staged in .gpu-X, carried packed as .gpu-XZ/x.tar.xz.
#   1. backend_cuda_moe_gemm_test, the tiny and tiny_e128 batched decode checks with each form (the same numbers
#      expected: the same sums in the same order), memcheck on the tiny check at batch 16 with form 1;
#   2. the random 20b (written here unless /tmp/peers/r20 is there) against the exact CPU path at batch 16 and 64;
#   3. ROUNDS (2) rounds of the lab's default engine at 8 16 32 64 sequences, the forms interleaved;
#   4. CLI_ROUNDS (1) rounds of gptoss bench --parallel 1,16,64, the forms interleaved.
. "$(dirname "$0")/env.sh" .gpu-X
unpack_stage .gpu-XZ/x.tar.xz
print_card
r20_start
for v in 1 2 3 4 0; do
  echo "== GPTOSS_CUDA_MOE_DECODE_SCALES=$v"
  GPTOSS_CUDA_MOE_DECODE_SCALES=$v batched_checks "moe gemm16|decode check|PASSED|FAILED"
done
# The switch unset: form 1, the experiment binary's default.
compute-sanitizer --tool memcheck --leak-check no "$B/gptoss_cuda_decode_check" tests/data/tiny/model \
  --tokens 358,318,174,506,238 --tol 1e-4 --batch 16 --seqs 4 2>&1 | grep -E "batch 16|ERROR SUMMARY" || status=1
r20_wait
r20_check GPTOSS_CUDA_MOE_DECODE_SCALES 1 "$R20" "16,64"
lab_rounds GPTOSS_CUDA_MOE_DECODE_SCALES "0 1 2 3 4"
for r in $(seq "${CLI_ROUNDS:-1}"); do
  cli_with GPTOSS_CUDA_MOE_DECODE_SCALES={0,1,2,3,4}
done
date -u
exit $status
