#!/usr/bin/env bash
# On the GPU machine (NOTES v61): where v58's gain lands in a batch-1 step: the instrumented build's timeline
# (gptoss_cuda_timeline, NOTES v13: relations, not absolute times) with the evict-first weight streams
# (gptoss_cuda_timeline) and with plain loads (gptoss_cuda_timeline_base, -DGPTOSS_CUDA_STREAM_HINT=0), ROUNDS (2)
# interleaved rounds, the defaults (gate_up 0, down 1); the mean tables printed, every table in $OUT. Binaries in
# .gpu-X, carried packed as .gpu-XZ/x.tar.xz.
. "$(dirname "$0")/env.sh" .gpu-X
begin_lab_call .gpu-XZ/x.tar.xz
for r in $(seq "${ROUNDS:-2}"); do
  for b in gptoss_cuda_timeline_base gptoss_cuda_timeline; do
    echo "== round $r $b"
    timeout 60 "$B/$b" 5 0 1 > "$OUT/$b-r$r.txt" 2>&1 || status=1
    sed -n '/first start -> last end/p; /^mean over layers/,/^$/p' "$OUT/$b-r$r.txt" | head -24
  done
done
date -u
exit $status
