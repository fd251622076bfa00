#!/usr/bin/env bash
# Needs moe_mxfp4.cu as of 850a7f9..e953770 (per-kernel kGateUpBatch / kGateUpPerWarp / kDownBatch / kDownPerWarp),
# which the review after NOTES v36-v38 folded back into the shared kBatch / kPerWarp (v35 found no reason to split).
# On the GPU machine (NOTES v35): lab builds that differ only in the MoE kernels' constants (moe_mxfp4.cu
# kGateUpBatch / kGateUpPerWarp / kDownBatch / kDownPerWarp), staged as $S/bin/lab-V* and check-V* beside
# the libraries of scripts/gpu/stage.sh. Per build: its kernels' registers, the tiny checkpoint against the
# exact CPU path, then ROUNDS interleaved rounds of its per-kernel rows and batch-1 decode row
# (LAB_DECODE_ONLY=1).
. "$(dirname "$0")/env.sh" .gpu-S
VARIANTS=${VARIANTS:-V0 V1}
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.max.mem,driver_version --format=csv,noheader
for v in $VARIANTS; do
  echo "== $v registers"
  cuobjdump --dump-resource-usage "$B/lab-$v" 2>/dev/null | grep -A1 -E 'gate_up_kernel|down_kernel' |
    grep -oE 'REG:[0-9]+|STACK:[0-9]+|SHARED:[0-9]+|(gate_up|down)_kernel' | paste -sd' '
  "$B/check-$v" tests/data/tiny/model --tokens $TINY --tol 1e-4 --shapes 1,0,0 2>&1 | grep -E "vs cpu|decode check" ||
    status=1
done
for r in $(seq "${ROUNDS:-2}"); do
  for v in $VARIANTS; do
    echo "== $v round $r $(date -u +%T)"
    LAB_DECODE_ONLY=1 LAB_MOE_ROUNDS=1 LAB_MOE_PAIRS="0,0" "$B/lab-$v" bench 128 2>&1 |
      grep -E 'copy bandwidth|^qkv|^o_proj|gate_up|^down|unembedding|positions' || status=1
  done
done
exit $status
