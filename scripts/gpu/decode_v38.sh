#!/usr/bin/env bash
# On the GPU machine (NOTES v38): the grouped MoE GEMM (prefill, batched decode) with e2m1_direct's MXFP4 decode
# (11 instructions a word, values x 2^-14, the block scales x 2^14) instead of mxfp4_word_to_half2x4's table form.
# $S/bin holds the binaries without (gptoss, gptoss_cuda_lab) and with it (-v38). Checks of the new ones, the random 20b
# (written to R20, default /dev/shm/r20) against the exact CPU path at batch 1, 16, 64 with the new one, then ROUNDS
# rounds of `gptoss_cuda_lab batched 1` and `gptoss bench -p 512 -n 16`, old and new interleaved.
. "$(dirname "$0")/env.sh" .gpu-C
M=${R20:-/dev/shm/r20}
TOK=358,318,174,506,238,110,432
date -u
[ -f "$M/config.json" ] || python3 tools/make_random_checkpoint.py --preset 20b --out "$M" --quiet &
wpid=$!
for v in -v38; do  # the old binaries' numbers: NOTES v37 (the same checks)
  echo "== checks$v"
  "$B/backend_cuda_moe_gemm_test$v" 2>&1 | grep -E "^\[  (PASSED|FAILED) " || status=1
  "$B/gptoss_cuda_decode_check$v" tests/data/tiny/model --tokens $TOK --tol 1e-4 --batch 1,8,16,64 --seqs 8 2>&1 |
    grep -E "batch 64|decode check" || status=1
done
wait $wpid
echo "== random 20b vs the exact CPU path, -v38"
"$B/gptoss_cuda_decode_check-v38" "$M" --tokens 200005,1000,2000,3000 --tol 1e-4 --batch 1,16,64 --seqs 2 \
  --threads "$(nproc)" 2>&1 | grep -E "vs cpu|decode check" || status=1
for r in $(seq "${ROUNDS:-1}"); do
  for v in "" -v38; do
    echo "== round $r$v $(date -u +%T)"
    timeout 200 "$B/gptoss_cuda_lab$v" batched 1 2>&1 | grep -E "copy|default" || status=1
    timeout 200 "$B/gptoss$v" bench "$M" --device cuda -p 512 -n 16 -r 3 2>&1 | grep -E 'pp512' || status=1
  done
done
date -u
exit $status
