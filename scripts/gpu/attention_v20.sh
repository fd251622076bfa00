#!/usr/bin/env bash
# On the GPU machine (NOTES.md v20): attention kernels (VARIANTS; default 3, the default, and 2, v19's) in one
# device-tool call (v20's five calls ran it on commit e236f3a's variants 3-25 with VARIANTS / CANDIDATES /
# TIMELINE_VARIANTS set as NOTES v20 says), from a
# dir staged by scripts/gpu/stage.sh with TARGETS="gptoss_cuda_lab gptoss_cuda_decode_check" and
# EXTRA_TARGETS=gptoss_cuda_timeline: the lab's checks (every attention kernel vs the CPU double reference), the
# 27-token tiny decode check, compute-sanitizer memcheck on the lab's attention checks, the lab
# bench (its attention decode rows: LAB_ATTENTION at positions 4..131 and 512..639, ROUNDS interleaved rounds),
# the instrumented timeline under TIMELINE_VARIANTS, and the random 20b (written here on the CPU while the GPU
# runs the rest) vs the exact CPU path with each candidate. A summary of the key lines at the end.
. "$(dirname "$0")/env.sh" .gpu-G
RET=${OUT:-/tmp}  # the device tool's $OUT: only the logs' tarball goes there (it returns at most 8 files)
OUT=/tmp/gptoss-attention
mkdir -p "$OUT"
VARIANTS=${VARIANTS:-"3 2"}
CANDIDATES=${CANDIDATES:-"3"}  # the random 20b vs the exact CPU path with each
TIMELINE_VARIANTS=${TIMELINE_VARIANTS:-"3 2"}
R20=/tmp/r20
source "$(dirname "$0")/step.sh"
staged_env
timeout 240 python3 tools/make_random_checkpoint.py --preset 20b --out "$R20" --quiet > "$OUT/r20-write.txt" 2>&1 &
wpid=$!
step lab-check.txt 120 "$B/gptoss_cuda_lab" check
# the tiny model has 4 query heads on 2 KV heads: kernels 2 and 3 fall back to kernel 0 there (bits as before)
step tiny-a3.txt 60 "$B/gptoss_cuda_decode_check" tests/data/tiny/model --tokens $TINY --tol 1e-4 --shapes 1,0,0,4,3
# the new kernels under memcheck: the lab's attention checks (64 / 8 heads, every variant)
step san-lab-attention.txt 200 compute-sanitizer --tool memcheck --leak-check no "$B/gptoss_cuda_lab" check-attention
t0=$SECONDS; wait $wpid; echo "=== random 20b written: rc=$? (waited $((SECONDS - t0)) s more)"
LAB_ATTENTION="$VARIANTS" LAB_ATTENTION_ROUNDS=${ROUNDS:-3} step lab-bench.txt 300 "$B/gptoss_cuda_lab" bench
for a in $CANDIDATES; do  # within the call's time: each ~30-60 s
  [ $SECONDS -lt ${R20_UNTIL:-430} ] || { echo "=== r20 a$a skipped (time)"; continue; }
  step r20-a$a.txt 150 "$B/gptoss_cuda_decode_check" "$R20" --tokens 200005,1000,2000,3000,4000,5000 --tol 1e-4 \
    --threads 16 --shapes 1,0,0,4,$a
done
if [ -x "$B/gptoss_cuda_timeline" ]; then
  for a in $TIMELINE_VARIANTS; do
    [ $SECONDS -lt ${TIMELINE_UNTIL:-520} ] || { echo "=== timeline a$a skipped (time)"; continue; }
    step timeline-a$a.txt 40 "$B/gptoss_cuda_timeline" 5 0 0 4 $a
  done
fi
echo "=== summary"
grep -h "checks:\|FAIL" "$OUT/lab-check.txt" | head -40
grep -h "checks:\|ERROR SUMMARY" "$OUT/san-lab-attention.txt"
for f in $(cd "$OUT" && ls tiny-a*.txt r20-a*.txt 2>/dev/null); do
  echo "-- $f"; grep -h "vs cpu\|eager vs\|decode check\|ERROR SUMMARY" "$OUT/$f"
done
grep -h "^copy bandwidth\|^device\|attention\|^a[0-9]* round\|^nsplit\|^cuda graph+pdl" "$OUT/lab-bench.txt"
for a in $TIMELINE_VARIANTS; do
  [ -f "$OUT/timeline-a$a.txt" ] && { echo "-- timeline a$a"; grep -h -A10 "^mean over" "$OUT/timeline-a$a.txt" \
    | grep "^attention\|^o_proj\|^qkv\|^kernel\|^mean"; grep -h "^per layer\|^decode tok/s" "$OUT/timeline-a$a.txt"; }
done
tar -C "$OUT" -czf "$RET/attention-v20-logs.tar.gz" .
date -u
exit $status
