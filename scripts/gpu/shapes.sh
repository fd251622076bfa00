#!/usr/bin/env bash
# On the GPU machine (with .gpu/ from scripts/gpu/stage.sh carried): the kernel-shape variants of
# kernels.h (set_gemv_variant / set_moe_variant) compared in one run: the kernel lab's checks (every
# shape), whole-model checks against the exact CPU path for each shape in SHAPES ("G,GU,DN" triples)
# on the tiny checkpoint and, when R20_SHAPES is set, on the full-size random 20b, compute-sanitizer
# on the tiny checkpoint for SAN_SHAPES, the lab bench (per-kernel and batch-1 decode per shape) before the 20b checks,
# gptoss_cuda_timeline for each MoE pair in TIMELINE. STAGE_DIR: the staged dir (default .gpu).
# Logs: $OUT/shapes-logs.tgz; the summary and the bench go to stdout.
. "$(dirname "$0")/env.sh" .gpu
OUT=${OUT:-/tmp/gptoss-gpu}
L=/tmp/shapes-logs
mkdir -p "$OUT" "$L"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem,driver_version --format=csv
$B/gptoss_cuda_lab check > $L/lab-check.txt 2>&1 || status=1
echo "== lab check (rc $status)"; grep -E "FAIL|checks:" $L/lab-check.txt
for s in ${SHAPES:-0,0,0}; do
  $B/gptoss_cuda_decode_check tests/data/tiny/model --tokens $TINY --tol 1e-4 --shapes $s > "$L/tiny-$s.txt" 2>&1 || status=1
  echo "== tiny, shapes $s"; grep -E "vs cpu|eager vs|decode check|error" "$L/tiny-$s.txt"
done
for s in ${SAN_SHAPES:-}; do
  compute-sanitizer --tool memcheck --leak-check no $B/gptoss_cuda_decode_check tests/data/tiny/model \
    --tokens 358,318,174,506,238 --tol 1e-4 --shapes $s > "$L/sanitizer-$s.txt" 2>&1 || status=1
  echo "== compute-sanitizer memcheck, shapes $s"; grep -E "ERROR SUMMARY|decode check" "$L/sanitizer-$s.txt"
done
if [ "${BENCH:-1}" = 1 ]; then
  $B/gptoss_cuda_lab bench "${BENCH_TOKENS:-128}" > $L/lab-bench.txt 2>&1 || status=1
  echo "== lab bench"; cat $L/lab-bench.txt
fi
for m in ${TIMELINE:-}; do  # "GU,DN" MoE variant pairs: gptoss_cuda_timeline 5 steps with each
  $B/gptoss_cuda_timeline 5 ${m%,*} ${m#*,} > "$L/timeline-$m.txt" 2>&1 || status=1
  echo "== timeline, MoE $m"
  awk '/stamps|^== positions/ {print} /^mean over/ {p = 1} p {print} /^per layer/ {p = 0}' "$L/timeline-$m.txt"
done
if [ -n "${R20_SHAPES:-}" ]; then
  [ -f /tmp/rand-20b/config.json ] || python3 tools/make_random_checkpoint.py --preset 20b --out /tmp/rand-20b --quiet
  for s in $R20_SHAPES; do
    $B/gptoss_cuda_decode_check /tmp/rand-20b --tokens 200005,1000,2000,3000,4000,5000 --tol 1e-4 --threads "$(nproc)" \
      --shapes $s > "$L/random20b-$s.txt" 2>&1 || status=1
    echo "== full-size random 20b, shapes $s"; grep -E "vs cpu|eager vs|decode check|error" "$L/random20b-$s.txt"
  done
fi
tar czf "$OUT/shapes-logs.tgz" -C /tmp shapes-logs
exit $status
