#!/usr/bin/env bash
# On the GPU machine, with a staged dir carried (STAGE_DIR, default .gpu-F; built here by
#   BUILD=build-cuda-F STAGE_DIR=.gpu-F TARGETS="gptoss_cuda_lab gptoss_cuda_decode_check backend_cuda_test" \
#     EXTRA_TARGETS="backend_cuda_moe_gemm_test engine_graph_decode_test" scripts/gpu/stage.sh
# then cp build-cuda-F/src/backend/cuda/backend_cuda_moe_gemm_test build-cuda-F/src/engine/engine_graph_decode_test
# into $S/bin, and optionally an older gptoss_cuda_lab as $S/bin/gptoss_cuda_lab-old for a same-call baseline):
# the batched decode engine (MoE through the grouped GEMM from DecodeOptions::moe_gemm_min_batch).
#   test      backend_cuda_test, backend_cuda_moe_gemm_test, engine_graph_decode_test
#   tiny      decode_check on the tiny model at batch 1, 8, 16, 64 (8 sequences), GEMV and GEMM MoE
#   sanitize  compute-sanitizer memcheck: moe_gemm_test and the tiny batched decode check
#   bench     gptoss_cuda_lab batched ROUNDS (2): tok/s per batch, GEMV vs GEMM MoE; then the old
#             binary's lab bench decode rows (when $S/bin/gptoss_cuda_lab-old exists)
#   r20b      full-size random 20b: decode_check at batch 1, 8, 16, 64 (SEQS20 (2) sequences)
#   cli       full-size random 20b through the CLI and the serving engine: gptoss bench --parallel NPL
#             (1,16,64) -p NPP (128) -n NTG (128) -r REPS (2), llama-batched-bench's table; needs bin/gptoss
#   greedy    greedy on the device (issue 8): engine_graph_decode_test on the tiny model and, through the
#             serving engine, on the random 20b (GPTOSS_GREEDY_TEST_MODEL: device greedy ids vs every row
#             sampled on the host, same tokens); then ROUNDS (2) rounds of, interleaved, VARIANTS (old new
#             host): bin/gptoss-old (the CLI before the change), bin/gptoss, bin/gptoss --host-sampling,
#             host1 (--host-sampling, GPTOSS_SAMPLE_THREADS=1: rows sampled on the engine thread alone):
#             bench -p 512 -n 128 -r REPS (3) (unless TG=0) and --parallel NPL -p NPP -n NTG -r 2, JSON
#             lines in $OUT/greedy-*.txt
. "$(dirname "$0")/env.sh" .gpu-F
export TIKTOKEN_ENCODINGS_BASE="$PWD/tests/data"
OUT=${OUT:-/tmp/gptoss-gpu}
mkdir -p "$OUT"
TOK=358,318,174,506,238,100,7
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv | tee "$OUT/card.txt"
[ $# -gt 0 ] || set -- test tiny sanitize bench r20b
step() {  # label timeout command...
  local label=$1 t=$2
  shift 2
  local t0=$SECONDS
  timeout "$t" "$@" > "$OUT/$label.txt" 2>&1
  local rc=$?
  echo "== $label rc=$rc ($((SECONDS - t0)) s)"
  [ $rc -eq 0 ] || status=1
}
for what in "$@"; do
  case "$what" in
    test)
      step gtest-cuda 120 $B/backend_cuda_test
      step gtest-moe-gemm 120 $B/backend_cuda_moe_gemm_test
      step gtest-engine 120 $B/engine_graph_decode_test
      grep -hE "^\[  (PASSED|FAILED) |Failure|FAILED TEST" "$OUT"/gtest-*.txt
      ;;
    tiny)
      step tiny-batched 120 $B/gptoss_cuda_decode_check tests/data/tiny/model --tokens $TOK --tol 1e-4 \
        --batch 1,8,16,64 --seqs 8
      cat "$OUT/tiny-batched.txt"
      ;;
    sanitize)
      step memcheck-moe-gemm 200 compute-sanitizer --tool memcheck --leak-check no $B/backend_cuda_moe_gemm_test
      step memcheck-decode 150 compute-sanitizer --tool memcheck --leak-check no $B/gptoss_cuda_decode_check \
        tests/data/tiny/model --tokens 358,318,174 --tol 1e-4 --batch 1,16 --seqs 4
      grep -hE "ERROR SUMMARY|PASSED|FAILED|decode check" "$OUT"/memcheck-*.txt
      ;;
    bench)
      step lab-batched 200 $B/gptoss_cuda_lab batched "${ROUNDS:-2}"
      cat "$OUT/lab-batched.txt"
      if [ -x $B/gptoss_cuda_lab-old ]; then
        step lab-old 200 $B/gptoss_cuda_lab-old bench 128
        grep -E "^device|^copy|cuda graph\+pdl" "$OUT/lab-old.txt"
      fi
      ;;
    r20b)
      t0=$SECONDS
      [ -f /tmp/rand-20b/config.json ] || python3 tools/make_random_checkpoint.py --preset 20b --out /tmp/rand-20b --quiet
      echo "random 20b written in $((SECONDS - t0)) s"
      step r20b-batched 300 $B/gptoss_cuda_decode_check /tmp/rand-20b --tokens 200005,1000,2000,3000 --tol 1e-4 \
        --threads 16 --batch 1,8,16,64 --seqs "${SEQS20:-2}"
      cat "$OUT/r20b-batched.txt"
      ;;
    cli)
      t0=$SECONDS
      [ -f /tmp/rand-20b/config.json ] || python3 tools/make_random_checkpoint.py --preset 20b --out /tmp/rand-20b --quiet
      echo "random 20b ready after $((SECONDS - t0)) s"
      step cli-parallel 300 $B/gptoss bench /tmp/rand-20b --device cuda --parallel "${NPL:-1,16,64}" -p "${NPP:-128}" \
        -n "${NTG:-128}" -r "${REPS:-2}"
      cat "$OUT/cli-parallel.txt"
      ;;
    greedy)
      t0=$SECONDS
      [ -f /tmp/rand-20b/config.json ] || python3 tools/make_random_checkpoint.py --preset 20b --out /tmp/rand-20b --quiet
      echo "random 20b ready after $((SECONDS - t0)) s"
      step gtest-greedy 240 env GPTOSS_GREEDY_TEST_MODEL=/tmp/rand-20b $B/engine_graph_decode_test
      grep -hE "^\[  (PASSED|FAILED) |Failure|FAILED TEST|^\[       OK|Expected|Which|sequence" "$OUT/gtest-greedy.txt" | head -40
      for round in $(seq "${ROUNDS:-2}"); do
        for v in ${VARIANTS:-old new host}; do
          threads=
          case $v in
            old) bin=$B/gptoss-old; extra= ;;
            new) bin=$B/gptoss; extra= ;;
            host) bin=$B/gptoss; extra=--host-sampling ;;
            host1) bin=$B/gptoss; extra=--host-sampling; threads=1 ;;
            *) echo "unknown variant $v"; continue ;;
          esac
          [ -x "$bin" ] || continue
          [ "${TG:-1}" = 0 ] || step greedy-tg-$v-$round 200 env GPTOSS_SAMPLE_THREADS=$threads $bin bench /tmp/rand-20b \
            --device cuda -p 512 -n 128 -r "${REPS:-3}" --json $extra
          step greedy-par-$v-$round 300 env GPTOSS_SAMPLE_THREADS=$threads $bin bench /tmp/rand-20b --device cuda \
            --parallel "${NPL:-1,16,64}" -p "${NPP:-128}" -n "${NTG:-128}" -r 2 --json $extra
        done
      done
      python3 - "$OUT" <<'PY'
import glob, json, sys
for f in sorted(glob.glob(sys.argv[1] + "/greedy-*.txt")):
    try:
        j = json.loads(open(f).read().strip().splitlines()[-1])
    except Exception:
        print(f.split("/")[-1], "unreadable:", open(f).read()[-300:]); continue
    name = f.split("/")[-1][len("greedy-"):-4]
    if "parallel" in j:
        print("%-14s" % name, "  ".join("N=%d S_TG %.2f (%s) S_PP %.0f" % (r["n_parallel"], r["decode_tokens_per_s"],
              "/".join("%.1f" % (t / s) for t, s in zip(r["decode_tokens"], r["decode_seconds"])), r["prefill_tokens_per_s"])
              for r in j["parallel"]))
    else:
        print("%-14s pp512 %.2f  tg128 %.2f  (tg per rep: %s)" % (name, j.get("prefill_tokens_per_s", 0),
              j.get("decode_tokens_per_s", 0), " ".join("%.2f" % (128 / s) for s in j.get("decode_seconds", []))))
PY
      ;;
    *) echo "unknown step $what"; status=1 ;;
  esac
done
exit $status
