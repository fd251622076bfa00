#!/usr/bin/env bash
# On the GPU machine (NOTES v49; the switch is commit a6d722d, removed in the next commit: check it out to run this
# again): one shared-memory carveout (cudaLaunchAttributePreferredSharedMemoryCarveout,
# percent of the largest shared memory) on every launch_pdl launch, the same for every kernel (lab rows
# LAB_CARVEOUTS, else GPTOSS_CUDA_CARVEOUT read once), against none (-1, the default). Binaries staged in .gpu-X,
# carried packed as .gpu-XZ/x.tar.xz. Long outputs go to $OUT.
#   1. the tiny decode check (batch 1 and 4, every MoE path) with each value: launches succeed, the same numbers;
#   2. ROUNDS (3) rounds of the lab's batch-1 decode rows (positions 4..131), the values interleaved;
#   3. ROUNDS (2) rounds of the lab's batched rows (8 16 32 64 sequences) with -1 and BATCHED_VALUES;
#   4. one round of gptoss bench -p 512 -n 128 (tg128 at positions 512..639) per value in CLI_VALUES.
. "$(dirname "$0")/env.sh" .gpu-X
VALUES=${VALUES:--1 0 28 43 57 71}
begin_call .gpu-XZ/x.tar.xz
for v in $VALUES; do
  echo "== tiny, GPTOSS_CUDA_CARVEOUT=$v"
  GPTOSS_CUDA_CARVEOUT=$v "$B/gptoss_cuda_decode_check" tests/data/tiny/model --tokens "$TINY" --tol 1e-4 --batch 1,4 \
    --seqs 2 2>&1 | grep -E "graph\) vs cpu|batch  4, moe gemm16|decode check|rror" || status=1
done
LAB_CARVEOUTS="$VALUES" LAB_MOE_ROUNDS=${ROUNDS:-3} lab_rows
ROUNDS=${BATCHED_ROUNDS:-2} lab_rounds GPTOSS_CUDA_CARVEOUT "-1 ${BATCHED_VALUES:-43 57}"
r20_wait
for v in ${CLI_VALUES:--1 43 57}; do
  echo "== CLI GPTOSS_CUDA_CARVEOUT=$v $(date -u +%T)"
  GPTOSS_CUDA_CARVEOUT=$v timeout 200 "$B/gptoss" bench "$R20" --device cuda -p 512 -n 128 -r 3 2>&1 |
    grep -E 'pp512|tg128' || status=1
done
date -u
exit $status
