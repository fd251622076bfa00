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
echo "== random 20b vs the exact CPU path, variant 12 $(date -u +%T)"
GPTOSS_CUDA_MOE_DECODE_VARIANT=12 "$B/gptoss_cuda_decode_check" "$M" --tokens 200005,1000,2000,3000 --tol 1e-4 \
  --batch 1,16,64 --seqs 2 --threads "$(nproc)" 2>&1 | grep -E "vs cpu|decode check" || status=1
for r in $(seq "${ROUNDS:-2}"); do
  for v in old ${CLI_VARIANTS:-12 13}; do
    echo "== CLI round $r $v $(date -u +%T)"
    if [ "$v" = old ]; then bin=$B/gptoss-old; else bin=$B/gptoss; fi
    GPTOSS_CUDA_MOE_DECODE_VARIANT=${v/old/0} timeout 200 "$bin" bench "$M" --device cuda -p 128 -n 128 \
      --parallel 1,16,64 2>&1 | grep -E '^\|' || status=1
  done
done
date -u
exit $status
