#!/usr/bin/env bash
# On the GPU machine (NOTES v60; the code is commit bddc7bf, reverted in the next commit: check it out to run this
# again): gate_up's blocks ask L2, before their wait, for the next layer's q / k / v rows that
# qkv_rope_kernel loads after its wait (GPTOSS_CUDA_L2PF=1: rows 32..63 of every head, 14.7 MB on the 20b; 2: every
# row, 29.5 MB), against none (unset). Binaries in .gpu-X, carried packed as .gpu-XZ/x.tar.xz.
#   1. the tiny decode check and memcheck with GPTOSS_CUDA_L2PF=1 and 2 (the same numbers expected);
#   2. ROUNDS (3) interleaved rounds of the lab's batch-1 row (positions 4..131) with the variable unset, 1 and 2;
#   3. CLI_ROUNDS (2) rounds of `gptoss bench -p 512 -n 128 -r 3` on the random 20b, unset and 1 and 2.
. "$(dirname "$0")/env.sh" .gpu-X
begin_call .gpu-XZ/x.tar.xz
for m in 1 2; do
  echo "== GPTOSS_CUDA_L2PF=$m"
  GPTOSS_CUDA_L2PF=$m tiny_shapes "1,0,1" --batch 1,4 --seqs 2
  GPTOSS_CUDA_L2PF=$m tiny_memcheck "graph"
done
for r in $(seq "${ROUNDS:-3}"); do
  for m in none 1 2; do
    echo "== round $r L2PF=$m $(date -u +%T)"
    if [ "$m" = none ]; then
      LAB_DECODE_ONLY=1 timeout 100 "$B/gptoss_cuda_lab" bench 128 2>&1 | grep -E "gu[0-9] dn" || status=1
    else
      GPTOSS_CUDA_L2PF=$m LAB_DECODE_ONLY=1 timeout 100 "$B/gptoss_cuda_lab" bench 128 2>&1 | grep -E "gu[0-9] dn" ||
        status=1
    fi
  done
done
r20_wait
for r in $(seq "${CLI_ROUNDS:-2}"); do
  for m in none 1 2; do
    echo "== CLI round $r L2PF=$m $(date -u +%T)"
    if [ "$m" = none ]; then
      timeout 200 "$B/gptoss" bench "$R20" --device cuda -p 512 -n 128 -r 3 2>&1 | grep -E 'tg128' || status=1
    else
      GPTOSS_CUDA_L2PF=$m timeout 200 "$B/gptoss" bench "$R20" --device cuda -p 512 -n 128 -r 3 2>&1 | grep -E 'tg128' ||
        status=1
    fi
  done
done
GPTOSS_CUDA_L2PF=1 r20_shapes "1,0,1"
date -u
exit $status
