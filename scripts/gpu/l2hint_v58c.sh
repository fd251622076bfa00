#!/usr/bin/env bash
# On the GPU machine (NOTES v58c): the grouped GEMM's weight copies (batched decode, prefill) with the L2 evict-first
# policy too (valid copies without a source size), against plain loads (*_base, -DGPTOSS_CUDA_STREAM_HINT=0).
# Binaries in .gpu-X, carried packed as .gpu-XZ/x.tar.xz.
#   1. backend_cuda_test, the batched checks, memcheck on the tiny check at batch 1 and 4 (gemm paths included);
#   2. ROUNDS (3) rounds of the lab's batched engine at 8 16 32 64 sequences from each binary;
#   3. CLI_ROUNDS (2) rounds of `gptoss bench -p 512 -n 128 --parallel 1,16,64` on the random 20b from each binary.
. "$(dirname "$0")/env.sh" .gpu-X
begin_call .gpu-XZ/x.tar.xz
cuda_tests
batched_checks
tiny_memcheck "" --batch 1,4 --seqs 2
batched_bin_rounds "gptoss_cuda_lab_base gptoss_cuda_lab"
r20_wait
cli_bin_rounds "gptoss_base gptoss" -p 512 -n 128 -r 3 --parallel 1,16,64
date -u
exit $status
