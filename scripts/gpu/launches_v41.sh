#!/usr/bin/env bash
# On the GPU machine (NOTES v41): the batched decode step with fewer launches a layer (one MoE grouping for both
# GEMMs, the MoE combine adding into the residual, o_proj's split sum adding into the residual, RoPE of q and k with
# the KV store in one kernel). The CUDA tests, the tiny and tiny_e128 batched decode checks against the exact CPU
# path, then ROUNDS (2) rounds of the lab's default engine at BATCHES (8 16 32 64), the new binary against the one
# before ($S/bin/gptoss_cuda_lab-old), interleaved. Binaries staged in .gpu-L, carried packed as .gpu-LZ/l.tar.xz.
. "$(dirname "$0")/env.sh" .gpu-L
unpack_stage .gpu-LZ/l.tar.xz
print_card
for t in backend_cuda_test engine_graph_decode_test; do
  timeout 120 "$B/$t" 2>&1 | grep -E "^\[  (PASSED|FAILED) |Failure" || status=1
done
batched_checks "moe gemm(8 |16)|decode check"
for r in $(seq "${ROUNDS:-2}"); do
  for v in -old ""; do
    echo "== round $r gptoss_cuda_lab$v $(date -u +%T)"
    LAB_ENGINES=5 LAB_BATCHES="${BATCHES:-8 16 32 64}" timeout 120 "$B/gptoss_cuda_lab$v" batched 1 2>&1 \
      | grep -E "default" || status=1
  done
done
date -u
exit $status
