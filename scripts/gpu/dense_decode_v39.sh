#!/usr/bin/env bash
# Needs the lab switches NOTES v39 describes (GPTOSS_CUDA_MOE_DECODE_VARIANT / GPTOSS_CUDA_DENSE_DECODE_VARIANT in
# moe_gemm.cu), which were removed when the winners became the code: kept as the record of how v39 was measured.
# On the GPU machine (NOTES v39): the decode engine's dense GEMMs (q/k/v/o, unembedding; 8+ sequences) in the tile
# shapes GPTOSS_CUDA_DENSE_DECODE_VARIANT picks (moe_gemm.cu: 0 the 64-slot tiles; 1 16 / 32-slot tiles for up to
# 16 / 32 sequences; 2 as 1 with 3 stages; 3 as 1, registers capped; 4 32-slot tiles above 16; 5 as 1 with more
# K splits), with v39's MoE decode tiles. Checks per variant (backend_cuda_moe_gemm_test, the tiny and tiny_e128
# batched decode checks), the random 20b (R20, default /dev/shm/r20) against the exact CPU path with DV (default 1),
# the lab's default engine per variant, then the CLI's --parallel rows: $S/bin/gptoss-old (HEAD before v39) against
# $S/bin/gptoss with each of CLI_VARIANTS, interleaved, ROUNDS times.
. "$(dirname "$0")/env.sh" .gpu-V
M=${R20:-/dev/shm/r20}
date -u
[ -f "$M/config.json" ] || python3 tools/make_random_checkpoint.py --preset 20b --out "$M" --quiet &
wpid=$!
VS=${VARIANTS:-0 1 2 3 4 5}
for v in $VS; do
  echo "== checks, dense variant $v"
  export GPTOSS_CUDA_DENSE_DECODE_VARIANT=$v
  batched_checks "batch (32|64).*gemm16|decode check" 1,8,16,32,64
done
for r in 1 2; do
  for v in $VS; do
    echo "== lab round $r dense variant $v $(date -u +%T)"
    GPTOSS_CUDA_DENSE_DECODE_VARIANT=$v LAB_ENGINES=5 LAB_BATCHES="8 12 16 32 64" timeout 200 \
      "$B/gptoss_cuda_lab" batched 1 2>&1 | grep -E "copy|default" || status=1
  done
done
wait $wpid
r20_check GPTOSS_CUDA_DENSE_DECODE_VARIANT "${DV:-1}" "$M" 1,16,32,64
cli_rounds GPTOSS_CUDA_DENSE_DECODE_VARIANT "$M" "${CLI_VARIANTS:-0 1}"
date -u
exit $status
