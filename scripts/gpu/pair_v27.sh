#!/usr/bin/env bash
# On the GPU machine (NOTES v27; a dir staged by scripts/gpu/stage.sh with TARGETS="gptoss_cuda_lab
# gptoss_cuda_decode_check backend_cuda_test gptoss" and EXTRA_TARGETS="gptoss_cuda_timeline"): the MoE pair split by
# intermediate slices (MoE variants 2, 3) against the default: the lab's checks, the tiny decode check and
# compute-sanitizer memcheck for each "G,GU,DN" triple in SHAPES / SAN_SHAPES, backend_cuda_test, the lab bench
# with LAB_MOE_PAIRS (decode rows interleaved; LAB_STEP_IO rows at 4..131 and 512..639 when set), then
# gptoss_cuda_timeline for each "GU,DN" in TIMELINE. Logs in $OUT; the key lines at the end.
set -uo pipefail
cd "$(dirname "$0")/../.."
S=${STAGE_DIR:-.gpu}
B=$S/bin
OUT=${OUT:-/tmp/gptoss-pair}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$PWD/$S/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export GPTOSS_SOURCE_DIR="$PWD"
TINY=358,318,174,506,238,110,432,82,439,313,58,22,227,18,72,263,496,238,413,469,421,322,225,263,136,254,194
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/card.txt"
date -u +%T > "$OUT/start.txt"
timeout 200 "$B/gptoss_cuda_lab" check > "$OUT/lab-check.txt" 2>&1; echo "rc $?" >> "$OUT/lab-check.txt"
for s in ${SHAPES:-1,0,0 1,2,0 1,3,0}; do
  timeout 90 "$B/gptoss_cuda_decode_check" tests/data/tiny/model --tokens $TINY --tol 1e-4 --shapes "$s" \
    > "$OUT/tiny-$s.txt" 2>&1; echo "rc $?" >> "$OUT/tiny-$s.txt"
done
if [ "${TESTS:-1}" = 1 ]; then timeout 120 "$B/backend_cuda_test" > "$OUT/backend-test.txt" 2>&1; echo "rc $?" >> "$OUT/backend-test.txt"; fi
if [ "${BENCH:-1}" = 1 ]; then
  timeout "${BENCH_TIMEOUT:-300}" "$B/gptoss_cuda_lab" bench 128 > "$OUT/lab-bench.txt" 2>&1; echo "rc $?" >> "$OUT/lab-bench.txt"
fi
for s in ${SAN_SHAPES:-1,2,0}; do
  timeout 200 compute-sanitizer --tool memcheck --leak-check no "$B/gptoss_cuda_decode_check" tests/data/tiny/model \
    --tokens 358,318,174,506,238 --tol 1e-4 --shapes "$s" > "$OUT/memcheck-$s.txt" 2>&1; echo "rc $?" >> "$OUT/memcheck-$s.txt"
done
for m in ${TIMELINE:-}; do
  timeout 120 "$B/gptoss_cuda_timeline" 5 ${m%,*} ${m#*,} > "$OUT/timeline-$m.txt" 2>&1; echo "rc $?" >> "$OUT/timeline-$m.txt"
done
date -u +%T >> "$OUT/start.txt"
cat "$OUT/card.txt" "$OUT/start.txt"
echo "== lab check"; grep -E "pair|FAIL|checks:|^rc" "$OUT/lab-check.txt"
for s in ${SHAPES:-1,0,0 1,2,0 1,3,0}; do echo "== tiny $s"; grep -E "vs cpu|eager vs|decode check|error|^rc" "$OUT/tiny-$s.txt"; done
[ -f "$OUT/backend-test.txt" ] && { echo "== backend_cuda_test"; tail -3 "$OUT/backend-test.txt"; }
for s in ${SAN_SHAPES:-1,2,0}; do echo "== memcheck $s"; grep -E "ERROR SUMMARY|decode check|^rc" "$OUT/memcheck-$s.txt"; done
for m in ${TIMELINE:-}; do
  echo "== timeline $m"; awk '/stamps|^== positions/ {print} /^mean over/ {p = 1} p {print} /^per layer/ {p = 0}' "$OUT/timeline-$m.txt"
done
[ -f "$OUT/lab-bench.txt" ] && { echo "== lab bench"; grep -E "copy bandwidth|device:|moe|decode batch|positions|^rc" "$OUT/lab-bench.txt"; }
exit 0
