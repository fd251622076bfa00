#!/usr/bin/env bash
# On the GPU machine (NOTES v50): the MMA helper as a non-volatile asm (binaries with the suffix -nv: the compiler may
# move the mma.sync instructions among the others) against the volatile one (no suffix), and the prefill MoE GEMM's
# shape 4 (GPTOSS_CUDA_MOE_GEMM_SHAPE=4) in both. Binaries staged in .gpu-X, carried packed as .gpu-XZ/x.tar.xz.
#   1. -nv: backend_cuda_moe_gemm_test, the tiny batched decode check; the random 20b's 70-token prompt, logits bit
#      for bit against the volatile binary's;
#   2. ROUNDS (3) rounds of gptoss bench -p 512 -n 0 -r 5: volatile shape 4, -nv shape 4, -nv shape 0;
#   3. ROUNDS rounds of the lab's batch-1 decode rows (positions 4..131) and two of its batched rows, both binaries;
#   4. the op profile of pp512 (GPTOSS_CUDA_PROFILE=1) with -r 1 and -r 4 (the difference: three steady forwards).
. "$(dirname "$0")/env.sh" .gpu-X
OUT=${OUT:-/tmp/gptoss-gpu}
mkdir -p "$OUT"
unpack_stage .gpu-XZ/x.tar.xz
print_card
r20_start
"$B/backend_cuda_moe_gemm_test-nv" 2>&1 | grep -E "^\[  (PASSED|FAILED) |Failure" || status=1
"$B/gptoss_cuda_decode_check-nv" tests/data/tiny/model --tokens "$TINY" --tol 1e-4 --batch 1,16,64 --seqs 8 2>&1 |
  grep -E "graph\) vs cpu|batch (16|64)|decode check" || status=1
r20_wait
TOK=$(python3 -c "import random; random.seed(3); print(','.join(str(random.randrange(200000)) for _ in range(70)))")
GPTOSS_CUDA_MOE_GEMM_SHAPE=4 "$B/gptoss" logits "$R20" --tokens "$TOK" --device cuda --out /tmp/v.safetensors > /dev/null 2>&1 || status=1
GPTOSS_CUDA_MOE_GEMM_SHAPE=4 "$B/gptoss-nv" logits "$R20" --tokens "$TOK" --device cuda --out /tmp/nv.safetensors > /dev/null 2>&1 || status=1
python3 -c "
from safetensors.numpy import load_file
import numpy as np
a = load_file('/tmp/v.safetensors')['logits_0']; b = load_file('/tmp/nv.safetensors')['logits_0']
print('70-token logits, -nv bit-identical to volatile:', np.array_equal(a, b))" || status=1
for r in $(seq "${ROUNDS:-3}"); do
  for v in v4 nv4 nv0; do
    bin=$B/gptoss; [ "${v#nv}" != "$v" ] && bin=$B/gptoss-nv
    echo "== round $r $v $(date -u +%T)"
    GPTOSS_CUDA_MOE_GEMM_SHAPE=${v: -1} timeout 200 "$bin" bench "$R20" --device cuda -p 512 -n 0 -r 5 2>&1 | grep -E 'pp512' || status=1
  done
done
for r in $(seq "${ROUNDS:-3}"); do
  for v in "" -nv; do
    echo "== lab batch 1, round $r gptoss_cuda_lab$v $(date -u +%T)"
    LAB_DECODE_ONLY=1 LAB_MOE_ROUNDS=1 timeout 120 "$B/gptoss_cuda_lab$v" bench 128 2>&1 | grep -E "gu[0-9] dn" || status=1
  done
done
for r in 1 2; do
  for v in "" -nv; do
    echo "== lab batched round $r gptoss_cuda_lab$v $(date -u +%T)"
    LAB_ENGINES=5 LAB_BATCHES="8 16 32 64" timeout 120 "$B/gptoss_cuda_lab$v" batched 1 2>&1 | grep -E "default" || status=1
  done
done
for n in 1 4; do
  GPTOSS_CUDA_MOE_GEMM_SHAPE=4 GPTOSS_CUDA_PROFILE=1 timeout 200 "$B/gptoss" bench "$R20" --device cuda -p 512 -n 0 -r $n \
    > "$OUT/profile-r$n.txt" 2>&1 || status=1
done
date -u
exit $status
