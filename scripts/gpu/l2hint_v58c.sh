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
for r in $(seq "${ROUNDS:-3}"); do
  for b in gptoss_cuda_lab_base gptoss_cuda_lab; do
    echo "== batched round $r $b $(date -u +%T)"
    LAB_ENGINES=5 LAB_BATCHES="8 16 32 64" timeout 120 "$B/$b" batched 1 2>&1 | grep -E "default" || status=1
  done
done
r20_wait
for r in $(seq "${CLI_ROUNDS:-2}"); do
  for b in gptoss_base gptoss; do
    echo "== CLI round $r $b $(date -u +%T)"
    timeout 200 "$B/$b" bench "$R20" --device cuda -p 512 -n 128 -r 3 --parallel 1,16,64 2>&1 |
      grep -E '^\| *(gpt|[0-9])' || status=1
  done
done
date -u
exit $status
