#!/usr/bin/env bash
# On the GPU machine (NOTES v58): the L2 evict-first policy on every weight stream (the default since v58: the GEMVs'
# and MoE kernels' loads, the grouped GEMM's and the MoE ring's copies) against plain loads (-DGPTOSS_CUDA_STREAM_HINT=0,
# staged as *_base). Binaries in .gpu-X, carried packed as .gpu-XZ/x.tar.xz. The arithmetic is the same.
#   1. the checks of the default build: backend_cuda_test, the lab's checks, the tiny decode check at batch 1 and 4,
#      the batched checks (backend_cuda_moe_gemm_test, tiny and tiny_e128 at batch 1-64), memcheck on the tiny check;
#   2. ROUNDS (3) interleaved rounds of the lab's batch-1 rows, the default pair and the ring gate_up (1,1);
#   3. ROUNDS rounds of the lab's batched engine at 8 16 32 64 sequences;
#   4. CLI_ROUNDS (2) rounds of `gptoss bench -p 128 -n 128 --parallel 1,16,64` on the random 20b;
#   5. the random 20b against the exact CPU path (6 tokens) with the default build.
. "$(dirname "$0")/env.sh" .gpu-X
begin_call .gpu-XZ/x.tar.xz
cuda_tests
lab_checks
tiny_shapes "1,0,1" --batch 1,4 --seqs 2
batched_checks
tiny_memcheck "" --batch 1,4 --seqs 2
LAB_MOE_PAIRS="0,1 1,1" lab_bin_rounds "gptoss_cuda_lab_base gptoss_cuda_lab"
batched_bin_rounds "gptoss_cuda_lab_base gptoss_cuda_lab"
r20_wait
cli_bin_rounds "gptoss_base gptoss" -p 128 -n 128 --parallel 1,16,64
r20_shapes "1,0,1"
date -u
exit $status
