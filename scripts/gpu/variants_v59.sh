#!/usr/bin/env bash
# On the GPU machine (NOTES v59): with the weight streams evict-first in L2 (v58), the kernel variants that lost on
# their round trips again: the routers (4 the default, 3 folded into o_proj, 1 one block with the matrix in shared
# memory, 2 the plain cluster) and the attention kernels (3 the default, 2, 0), lab batch-1 rows, ROUNDS (3)
# interleaved rounds. Binaries in .gpu-X, carried packed as .gpu-XZ/x.tar.xz.
. "$(dirname "$0")/env.sh" .gpu-X
begin_lab_call .gpu-XZ/x.tar.xz
LAB_MOE_PAIRS="0,1" LAB_ROUTERS="4 3 1 2" LAB_MOE_ROUNDS=${ROUNDS:-3} lab_rows
echo "== attention $(date -u +%T)"
LAB_DECODE_ONLY=0 LAB_ATTENTION="3 2 0" LAB_ATTENTION_ROUNDS=${ROUNDS:-3} timeout 200 "$B/gptoss_cuda_lab" bench 128 \
  > "$OUT/lab-attention.txt" 2>&1
grep -E "^a[0-9] round" "$OUT/lab-attention.txt" || status=1
date -u
exit $status
