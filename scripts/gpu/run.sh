#!/usr/bin/env bash
# On the GPU machine, from the repo root with the staged dir carried (scripts/gpu/stage.sh made it;
# STAGE_DIR, default .gpu):
#   scripts/gpu/run.sh [check] [test] [tiny] [sanitize] [bench] [bench-old] [random20b] [graphtest] [moetest]
#     [timeline]
# bench-old runs $STAGE_DIR/bin/gptoss_cuda_lab_old (a previous lab binary copied there by hand) for a
# same-call baseline; graphtest and moetest run engine_graph_decode_test and backend_cuda_moe_gemm_test when
# they were staged (EXTRA_TARGETS); timeline: gptoss_cuda_timeline (EXTRA_TARGETS), the per-kernel timeline
# of graph decode steps (NOTES v13).
# Logs go to $OUT (the device tool's output folder) when set.
. "$(dirname "$0")/env.sh" .gpu
OUT=${OUT:-/tmp/gptoss-gpu}
mkdir -p "$OUT"
# step LOG CMD...: runs CMD, output to the terminal and $OUT/LOG
step() {
  local log="$OUT/$1"; shift
  echo "=== $* ==="
  "$@" > >(tee "$log") 2>&1
  local rc=$?
  echo "=== rc=$rc: $1"
  [ $rc -eq 0 ] || status=1
}
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem,driver_version --format=csv
[ $# -gt 0 ] || set -- check test tiny
for what in "$@"; do
  case "$what" in
    check) step lab-check.txt $B/gptoss_cuda_lab check ;;
    test) step gtest.txt $B/backend_cuda_test ;;
    tiny) step tiny-check.txt $B/gptoss_cuda_decode_check tests/data/tiny/model --tokens $TINY --tol 1e-4 ;;
    sanitize) step sanitizer.txt compute-sanitizer --tool memcheck --leak-check no $B/gptoss_cuda_decode_check \
                tests/data/tiny/model --tokens 358,318,174,506,238 --tol 1e-4 ;;
    profile) step ncu.txt ncu --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
               -k 'regex:qkv|attention|gemv|router|gate_up|down_kernel' -c 7 $B/gptoss_cuda_lab profile ;;
    small) python3 tools/make_random_checkpoint.py --preset small --out /tmp/rand-small --quiet &&
           step small-check.txt $B/gptoss_cuda_decode_check /tmp/rand-small --tokens 200005,1000,2000,3000,4000,5000,6000,7000 --tol 1e-4 ;;
    random20b) # full-size random 20b: written once per machine (about 13.8 GB)
           [ -f /tmp/rand-20b/config.json ] || { time python3 tools/make_random_checkpoint.py --preset 20b --out /tmp/rand-20b --quiet; }
           step random20b-check.txt $B/gptoss_cuda_decode_check /tmp/rand-20b --tokens 200005,1000,2000,3000,4000,5000 --tol 1e-4 \
             --threads "${THREADS:-16}" ${SHAPES:+--shapes "$SHAPES"} ;;
    bench) step lab-bench.txt $B/gptoss_cuda_lab bench "${BENCH_TOKENS:-128}" ;;
    bench-old) step lab-bench-old.txt $B/gptoss_cuda_lab_old bench "${BENCH_TOKENS:-128}" ;;
    graphtest) step graph-gtest.txt $B/engine_graph_decode_test ;;
    moetest) step moe-gtest.txt $B/backend_cuda_moe_gemm_test ;;
    timeline) step timeline.txt $B/gptoss_cuda_timeline "${TIMELINE_STEPS:-5}" ;;
    *) echo "unknown step $what"; status=1 ;;
  esac
done
exit $status
