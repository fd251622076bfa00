#!/usr/bin/env bash
# On the GPU machine (NOTES v36): the router of 128 experts (gpt-oss-120b) as one cluster of 16 blocks against the
# counter form, on the random 120b of scripts/gpu/r120.sh (R120, written there first if missing). $S/bin holds the
# binaries without the change (gptoss, ...) and with it (the same names + -v36). Lab checks of the new binary,
# the 120b against the exact CPU path with each, then ROUNDS rounds of `gptoss bench -p 512 -n 128 -r 3`, the two
# binaries interleaved.
. "$(dirname "$0")/env.sh" .gpu-120
M=${R120:-/dev/shm/r120}
date -u
[ -f "$M/config.json" ] || PARTS=write STAGE_DIR=$S R120=$M scripts/gpu/r120.sh | grep '=='
"$B/gptoss_cuda_lab-v36" check > /tmp/lab-check-v36.txt 2>&1 || status=1
grep -E "router|FAIL|checks:" /tmp/lab-check-v36.txt | grep -v ' ok ' | head -20
grep -E "r4 == r0" /tmp/lab-check-v36.txt
for v in "" -v36; do
  echo "== 120b vs the exact CPU path, gptoss_cuda_decode_check$v"
  "$B/gptoss_cuda_decode_check$v" "$M" --tokens 200005,1000,2000,3000,4000,5000 --tol 2e-4 --threads "$(nproc)" 2>&1 |
    grep -E "vs cpu|decode check|rror" || status=1
done
for r in $(seq "${ROUNDS:-2}"); do
  for v in "" -v36; do
    echo "== round $r gptoss$v $(date -u +%T)"
    timeout 200 "$B/gptoss$v" bench "$M" --device cuda -p 512 -n 128 -r 3 2>&1 | grep -E 'pp512|tg128' || status=1
  done
done
date -u
exit $status
