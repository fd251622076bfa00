#!/usr/bin/env bash
# On the GPU machine, with a staged dir carried (STAGE_DIR, default .gpu-prefill; scripts/gpu/stage.sh,
# plus bin/backend_cuda_moe_gemm_test and, for the old/new comparison, bin/gptoss-old: the CLI built
# from the commit before the change under test): the prefill path (T >= 8 token rows per op; MoE ops
# through the grouped MXFP4 GEMM, moe_gemm.h) against the old binary, the cuBLAS per-expert MoE path
# (GPTOSS_CUDA_PREFILL_MOE=cublas), the per-token kernels (GPTOSS_CUDA_PREFILL_MIN_T=0) and the exact
# CPU path, then pp512/tg128 of each in the same call.
#   gtest     backend_cuda_moe_gemm_test + backend_cuda_test (op-level checks against the cpu backend)
#   compare   full-size random 20b, TOKENS (default 24) through cpu / cuda old binary / cuda new /
#             cublas MoE / per-token kernels / x16 dense matmuls (GPTOSS_CUDA_PREFILL_DENSE=x16)
#   bench     copy bandwidth + gptoss bench -p 512 -n 128 -r REPS (3): old binary, new, new with cublas MoE,
#             new with x16 dense matmuls, old binary again
#   profile   GPTOSS_CUDA_PROFILE=1: time per op kind over a 16-token warm-up and five pp512
#   first     the first prefill of a process: per-repetition pp512 seconds of the old binary (its
#             16-token warm-up), the new one with --no-warmup (only the load-time warm-up step) and
#             with its default warm-up (llama-bench's: the whole test once), ROUNDS (2) rounds, REPS (5)
. "$(dirname "$0")/env.sh" .gpu-prefill
OUT=${OUT:-/tmp/gptoss-gpu}
mkdir -p "$OUT"
M=/tmp/rand-20b
NT=${NT:-24}
TOKENS=${TOKENS:-$(python3 -c "import random; random.seed(3); print(','.join(str(random.randrange(200000)) for _ in range($NT)))")}
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv | tee "$OUT/card.txt"
[ $# -gt 0 ] || set -- gtest compare bench
for what in "$@"; do
  case "$what" in
    gtest)
      [ -x $B/backend_cuda_moe_gemm_test ] && $B/backend_cuda_moe_gemm_test 2>&1 | tee "$OUT/gtest-moe-gemm.txt" | grep -E "OK|FAILED|PASSED|Failure|error|Expected|Which|rel"
      $B/backend_cuda_test 2>&1 | tee "$OUT/gtest.txt" | grep -E "OK|FAILED|PASSED|Failure|error|Expected|Which|rel|matmul" ;;
    compare)
      [ -f $M/config.json ] || { time python3 tools/make_random_checkpoint.py --preset 20b --out $M --quiet; } 2>&1 | tail -3
      ( time $B/gptoss logits $M --tokens $TOKENS --device cpu --threads "$(nproc)" --out /tmp/cpu.safetensors ) 2>&1 | tail -4
      if [ -x $B/gptoss-old ]; then ( time $B/gptoss-old logits $M --tokens $TOKENS --device cuda --out /tmp/cuda-old.safetensors ) 2>&1 | tail -4; fi
      ( time $B/gptoss logits $M --tokens $TOKENS --device cuda --out /tmp/cuda-new.safetensors ) 2>&1 | tail -4
      GPTOSS_CUDA_PREFILL_MOE=cublas $B/gptoss logits $M --tokens $TOKENS --device cuda --out /tmp/cuda-cublas.safetensors 2>&1 | tail -2
      GPTOSS_CUDA_PREFILL_MIN_T=0 $B/gptoss logits $M --tokens $TOKENS --device cuda --out /tmp/cuda-tokens.safetensors 2>&1 | tail -2
      GPTOSS_CUDA_PREFILL_DENSE=x16 $B/gptoss logits $M --tokens $TOKENS --device cuda --out /tmp/cuda-x16.safetensors 2>&1 | tail -2
      python3 - <<'PY' 2>&1 | tee "$OUT/compare.txt"
from safetensors.numpy import load_file
import numpy as np
ref = load_file("/tmp/cpu.safetensors")["logits_0"].astype(np.float64)
ref = ref.reshape(-1, ref.shape[-1])
for name in ("cuda-old", "cuda-new", "cuda-cublas", "cuda-tokens", "cuda-x16"):
    try:
        got = load_file(f"/tmp/{name}.safetensors")["logits_0"].astype(np.float64).reshape(ref.shape)
    except Exception as e:
        print(name, "missing", e); continue
    rel = np.abs(got - ref).max(axis=1) / np.abs(ref).max(axis=1)
    agree = int((got.argmax(axis=1) == ref.argmax(axis=1)).sum())
    print(f"{name}: rows {ref.shape[0]} max rel err {rel.max():.3e} (median row {np.median(rel):.3e}) argmax {agree}/{ref.shape[0]}")
PY
      ;;
    bench)
      python3 -c "
import torch
a=torch.empty(2<<30,dtype=torch.uint8,device='cuda'); b=torch.empty_like(a)
for _ in range(3): b.copy_(a)
s=torch.cuda.Event(enable_timing=True); e=torch.cuda.Event(enable_timing=True)
s.record()
for _ in range(20): b.copy_(a)
e.record(); torch.cuda.synchronize()
print('copy bandwidth (D2D 2 GiB, read+write): %.1f GB/s' % (2*a.numel()*20/(s.elapsed_time(e)/1e3)/1e9))
" 2>&1 | tee "$OUT/copy.txt"
      [ -f $M/config.json ] || { time python3 tools/make_random_checkpoint.py --preset 20b --out $M --quiet; } 2>&1 | tail -3
      if [ -x $B/gptoss-old ]; then echo "--- old binary"; $B/gptoss-old bench $M -p 512 -n 128 -r ${REPS:-3} --device cuda 2>&1 | tee "$OUT/bench-old.txt" | tail -4; fi
      echo "--- new"; $B/gptoss bench $M -p 512 -n 128 -r ${REPS:-3} --device cuda 2>&1 | tee "$OUT/bench-new.txt" | tail -4
      echo "--- new, GPTOSS_CUDA_PREFILL_MOE=cublas"; GPTOSS_CUDA_PREFILL_MOE=cublas $B/gptoss bench $M -p 512 -n 0 -r ${REPS:-3} --device cuda 2>&1 | tee "$OUT/bench-cublas.txt" | tail -1
      echo "--- new, GPTOSS_CUDA_PREFILL_DENSE=x16"; GPTOSS_CUDA_PREFILL_DENSE=x16 $B/gptoss bench $M -p 512 -n 0 -r ${REPS:-3} --device cuda 2>&1 | tee "$OUT/bench-x16.txt" | tail -1
      if [ -x $B/gptoss-old ]; then echo "--- old binary again"; $B/gptoss-old bench $M -p 512 -n 0 -r ${REPS:-3} --device cuda 2>&1 | tail -1; fi
      ;;
    first)
      [ -f $M/config.json ] || { time python3 tools/make_random_checkpoint.py --preset 20b --out $M --quiet; } 2>&1 | tail -3
      for round in $(seq "${ROUNDS:-2}"); do
        if [ -x $B/gptoss-old ]; then
          $B/gptoss-old bench $M -p 512 -n 0 -r ${REPS:-5} --device cuda --json > "$OUT/first-old-$round.json" 2>&1
        fi
        $B/gptoss bench $M -p 512 -n 0 -r ${REPS:-5} --device cuda --no-warmup --json > "$OUT/first-nowarm-$round.json" 2>&1
        $B/gptoss bench $M -p 512 -n 128 -r ${REPS:-5} --device cuda --json > "$OUT/first-new-$round.json" 2>&1
      done
      python3 - "$OUT" <<'PY'
import glob, json, sys
for f in sorted(glob.glob(sys.argv[1] + "/first-*.json")):
    try:
        j = json.loads(open(f).read().strip().splitlines()[-1])
    except Exception as e:
        print(f, "unreadable:", open(f).read()[-300:]); continue
    s = j.get("prefill_seconds", [])
    print("%-22s load %6.2f s  pp512 %9.2f t/s  per rep %s%s" % (
        f.split("/")[-1], j["load_seconds"], j["prefill_tokens_per_s"], " ".join("%.4f" % x for x in s),
        "  tg%d %.2f t/s" % (j["n_gen"], j["decode_tokens_per_s"]) if j.get("n_gen") else ""))
PY
      ;;
    profile)
      [ -f $M/config.json ] || { time python3 tools/make_random_checkpoint.py --preset 20b --out $M --quiet; } 2>&1 | tail -3
      echo "--- profile (one 16-token warm-up + 5 x pp512, each op synchronized)"
      GPTOSS_CUDA_PROFILE=1 $B/gptoss bench $M -p 512 -n 0 -r 5 --device cuda 2>&1 | tee "$OUT/profile.txt" | grep -v "^|"
      ;;
  esac
done
