#!/usr/bin/env bash
# On the GPU machine (NOTES v58): the weight streams with an L2 evict-first policy (GPTOSS_CUDA_STREAM_HINT=1,
# common.cuh) against the same commit's plain loads. Staged: the hinted build's binaries (gptoss_cuda_lab,
# gptoss_cuda_decode_check, backend_cuda_test, gptoss) and the plain build's as *_base, in .gpu-X, carried packed as
# .gpu-XZ/x.tar.xz. The arithmetic is the same: the same numbers expected.
#   1. backend_cuda_test, the lab's checks, the tiny decode check at batch 1 and 4 from both binaries;
#   2. ROUNDS (3) rounds of the lab's batch-1 row (positions 4..131) from each binary, interleaved;
#   3. CLI_ROUNDS (2) rounds of `gptoss bench -p 512 -n 128 -r 3` on the random 20b from each binary (tg128 at
#      positions 512..639).
# SKIP_CHECKS=1 skips step 1.
. "$(dirname "$0")/env.sh" .gpu-X
begin_call .gpu-XZ/x.tar.xz
[ "${SKIP_CHECKS:-0}" = 1 ] || cuda_tests
[ "${SKIP_CHECKS:-0}" = 1 ] || lab_checks
[ "${SKIP_CHECKS:-0}" = 1 ] || for b in gptoss_cuda_decode_check_base gptoss_cuda_decode_check; do
  echo "== tiny $b"
  "$B/$b" tests/data/tiny/model --tokens "$TINY" --tol 1e-4 --batch 1,4 --seqs 2 2>&1 | grep -E "vs cpu|decode check|rror" ||
    status=1
done
lab_bin_rounds "gptoss_cuda_lab_base gptoss_cuda_lab"
r20_wait
CLI_PAT='pp512|tg128' cli_bin_rounds "gptoss_base gptoss" -p 512 -n 128 -r 3
date -u
exit $status
