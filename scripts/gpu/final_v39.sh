#!/usr/bin/env bash
# On the GPU machine (NOTES v39): the committed v39 code (the batched-decode MoE tiles' stage depth, the dense decode
# GEMMs' 16 / 32-slot tiles) checked and measured in one call. Checks (each by its exit status): backend_cuda_test,
# backend_cuda_moe_gemm_test, the tiny and tiny_e128 batched decode checks at batch 1..64, the random 20b (R20,
# default /dev/shm/r20) against the exact CPU path at batch 1, 16, 32, 64. Then the lab's default engine at 1..64
# sequences, and the CLI's --parallel rows and pp512 for $S/bin/gptoss and $S/bin/gptoss-old (the CLI before v39).
. "$(dirname "$0")/env.sh" .gpu-V
M=${R20:-/dev/shm/r20}
check() {  # check NAME CMD...: runs CMD, prints its last lines and its exit status
  local out rc
  out=$("${@:2}" 2>&1); rc=$?
  echo "$out" | grep -E "PASSED|FAILED|decode check|batch 64|vs cpu" | tail -${TAIL:-4}
  echo "== $1: rc $rc"
  [ $rc -eq 0 ] || status=1
}
date -u
cat "$S/COMMIT"
[ -f "$M/config.json" ] || python3 tools/make_random_checkpoint.py --preset 20b --out "$M" --quiet &
wpid=$!
check backend_cuda_test "$B/backend_cuda_test"
check backend_cuda_moe_gemm_test "$B/backend_cuda_moe_gemm_test"
check tiny "$B/gptoss_cuda_decode_check" tests/data/tiny/model --tokens 358,318,174,506,238,110,432 --tol 1e-4 \
  --batch 1,8,16,32,64 --seqs 8
check tiny_e128 "$B/gptoss_cuda_decode_check" tests/data/tiny_e128/model --tokens 158,18,174,206,238,110,43 \
  --tol 1e-4 --batch 1,8,16,32,64 --seqs 8
echo "== lab $(date -u +%T)"
LAB_ENGINES=5 LAB_BATCHES="1 8 12 16 32 64" timeout 100 "$B/gptoss_cuda_lab" batched 1 2>&1 | grep -E "copy|default" ||
  status=1
wait $wpid
TAIL=20 check r20 "$B/gptoss_cuda_decode_check" "$M" --tokens 200005,1000,2000,3000 --tol 1e-4 --batch 1,16,32,64 \
  --seqs 2 --threads "$(nproc)"
for bin in gptoss gptoss-old; do
  echo "== CLI $bin $(date -u +%T)"
  timeout 100 "$B/$bin" bench "$M" --device cuda -p 128 -n 128 --parallel 1,16,64 2>&1 | grep -E '^\|' || status=1
  timeout 100 "$B/$bin" bench "$M" --device cuda -p 512 -n 16 -r 3 2>&1 | grep -E 'pp512' || status=1
done
date -u
exit $status
