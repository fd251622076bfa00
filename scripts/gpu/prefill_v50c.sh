#!/usr/bin/env bash
# On the GPU machine (NOTES v50): prefill modes compared (MODES, environment assignments; default: the MoE GEMM's
# shape 4 against shape 5, its scale bytes by cp.async, and the dense projections on the x16 GEMM instead of cuBLAS,
# GPTOSS_CUDA_PREFILL_DENSE=x16; SHAPES: the GEMM test's shapes). Binaries staged in .gpu-X, carried packed as
# .gpu-XZ/x.tar.xz.
#   1. backend_cuda_moe_gemm_test with shapes 4 and 5, backend_cuda_test;
#   2. the random 20b's 70-token prompt in one forward, each mode against the exact CPU path and bit for bit against
#      the first mode;
#   3. ROUNDS (3) rounds of gptoss bench -p 512 -n 0 -r 5, the modes interleaved.
. "$(dirname "$0")/env.sh" .gpu-X
unpack_stage .gpu-XZ/x.tar.xz
print_card
r20_start
for sh in ${SHAPES:-4 5}; do
  GPTOSS_CUDA_MOE_GEMM_SHAPE=$sh "$B/backend_cuda_moe_gemm_test" 2>&1 | grep -E "^\[  (PASSED|FAILED) |Failure" || status=1
done
"$B/backend_cuda_test" 2>&1 | grep -E "^\[  (PASSED|FAILED) |Failure" || status=1
r20_wait
TOK=$(python3 -c "import random; random.seed(3); print(','.join(str(random.randrange(200000)) for _ in range(70)))")
modes=${MODES:-GPTOSS_CUDA_MOE_GEMM_SHAPE=4 GPTOSS_CUDA_MOE_GEMM_SHAPE=5 GPTOSS_CUDA_PREFILL_DENSE=x16}
for m in $modes; do
  env "$m" "$B/gptoss" logits "$R20" --tokens "$TOK" --device cuda --out "/tmp/${m#*=}.safetensors" > /dev/null 2>&1 || status=1
done
timeout 300 "$B/gptoss" logits "$R20" --tokens "$TOK" --device cpu --threads "$(nproc)" --out /tmp/cpu.safetensors \
  > /dev/null 2>&1 || status=1
MODES_LIST="$modes" python3 - <<'PY' || status=1
from safetensors.numpy import load_file
import numpy as np
import os
names = [m.split("=", 1)[1] for m in os.environ["MODES_LIST"].split()]
L = {n: load_file(f"/tmp/{n}.safetensors")["logits_0"].astype(np.float64) for n in names + ["cpu"]}
ref = L["cpu"].reshape(-1, L["cpu"].shape[-1])
first = names[0]
for n in names:
    got = L[n].reshape(ref.shape)
    rel = np.abs(got - ref).max(axis=1) / np.abs(ref).max(axis=1)
    print(f"{n}: vs cpu max rel err {rel.max():.3e}, argmax {(got.argmax(1) == ref.argmax(1)).sum()}/{ref.shape[0]}, "
          f"bit-identical to {first}: {np.array_equal(L[n], L[first])}")
PY
for r in $(seq "${ROUNDS:-3}"); do
  for m in $modes; do
    echo "== round $r $m $(date -u +%T)"
    env "$m" timeout 200 "$B/gptoss" bench "$R20" --device cuda -p 512 -n 0 -r 5 2>&1 | grep -E 'pp512' || status=1
  done
done
date -u
exit $status
