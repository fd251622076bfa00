#!/usr/bin/env bash
# On the GPU machine (NOTES v46): main's binaries with the 4-warp MoE decode tiles, the run of record. Binaries staged in
# .gpu-V, carried packed as .gpu-VZ/v.tar.xz, with .peers (llama.cpp's source).
#   1. the tiny and tiny_e128 batched decode checks against the exact CPU path at batch 1, 8, 16, 64 and 384, and
#      memcheck on the tiny check at batch 16 and 64 (the 8 and 16-slot tiles); into $OUT/batched.txt;
#   2. scripts/gpu/final.sh with llama.cpp (ROUNDS 2, REPS 5): the comparison of bench/results/gpu-vs-llamacpp.md.
. "$(dirname "$0")/env.sh" .gpu-V
rm -rf "$S" && mkdir -p "$S" && tar -C "$S" -xJf .gpu-VZ/v.tar.xz
print_card
{
  batched_checks "moe gemm|decode check|batch (1|384)," "1,8,16,64,384"
  tiny_memcheck "batch (16|64), moe gemm(8 |16)" --batch 16,64 --seqs 4
} > "${OUT:-/tmp}/batched.txt" 2>&1
grep -cE "ok \(tol|ERROR SUMMARY: 0 errors" "${OUT:-/tmp}/batched.txt"
STAGE_DIR=$S ROUNDS=2 REPS=5 scripts/gpu/final.sh || status=1
date -u
exit $status
