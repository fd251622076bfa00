#!/usr/bin/env bash
# Needs the lab switches NOTES v39 describes (GPTOSS_CUDA_MOE_DECODE_VARIANT / GPTOSS_CUDA_DENSE_DECODE_VARIANT in
# moe_gemm.cu), which were removed when the winners became the code: kept as the record of how v39 was measured.
# On the GPU machine (NOTES v39), after moe_decode_v39.sh: variants 12 / 13 (the stage depth per tile size) checked,
# the random 20b (written to R20, default /dev/shm/r20) against the exact CPU path with variant 12, the lab's rows
# for the candidates, then the CLI's --parallel rows: $S/bin/gptoss-old (HEAD before v39) against $S/bin/gptoss with
# GPTOSS_CUDA_MOE_DECODE_VARIANT = each of CLI_VARIANTS, interleaved, ROUNDS times.
. "$(dirname "$0")/env.sh" .gpu-V
M=${R20:-/dev/shm/r20}
date -u
[ -f "$M/config.json" ] || python3 tools/make_random_checkpoint.py --preset 20b --out "$M" --quiet &
wpid=$!
VARIANTS="12 13" ROUNDS=0 STAGE_DIR=$S scripts/gpu/moe_decode_v39.sh || status=1
for r in 1 2; do
  for v in 0 6 7 12 13; do
    echo "== lab round $r variant $v $(date -u +%T)"
    GPTOSS_CUDA_MOE_DECODE_VARIANT=$v LAB_ENGINES="${LAB_ENGINES:-5}" LAB_BATCHES="12 16 32 64" timeout 200 \
      "$B/gptoss_cuda_lab" batched 1 2>&1 | grep -E "copy|moe|default" || status=1
  done
done
wait $wpid
r20_check GPTOSS_CUDA_MOE_DECODE_VARIANT 12 "$M" 1,16,64
cli_rounds GPTOSS_CUDA_MOE_DECODE_VARIANT "$M" "${CLI_VARIANTS:-12 13}"
date -u
exit $status
