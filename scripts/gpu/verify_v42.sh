#!/usr/bin/env bash
# On the GPU machine (NOTES v42): main's binaries after v41 (its rope_rotate form and the one-split add_to_out route
# of dense_gemm_x16 were never run on a GPU). Binaries staged in .gpu-U, carried packed as .gpu-UZ/u.tar.xz.
#   1. the tiny and tiny_e128 batched decode checks against the exact CPU path at batch 1, 8, 16, 64 and 384;
#   2. final.sh without the peers (PEERS=0): the CUDA tests, the lab bench, gptoss bench, the random 20b against the
#      exact CPU path, memcheck, the lab checks, the tiny decode check;
#   3. the random 20b against the exact CPU path in batches of 64 and 384 sequences (384: o_proj's grid needs no
#      K split on 132 SMs, so its residual add takes the one-split route);
#   4. the CLI's concurrent sequences: gptoss bench --parallel 1,16,64.
. "$(dirname "$0")/env.sh" .gpu-U
unpack_stage .gpu-UZ/u.tar.xz
print_card
batched_checks "moe gemm|decode check|batch (1|384)," "1,8,16,64,384"
PEERS=0 STAGE_DIR=$S scripts/gpu/final.sh || status=1
r20_check GPTOSS_UNUSED 0 /tmp/peers/r20 "64,384"
echo "== gptoss bench --parallel 1,16,64 $(date -u +%T)"
timeout 150 "$B/gptoss" bench /tmp/peers/r20 --device cuda --parallel 1,16,64 -p 128 -n 128 -r 2 2>&1 \
  | grep -E '^\|' || status=1
date -u
exit $status
