#!/usr/bin/env bash
# On the GPU machine (NOTES v56): where a batch-1 step goes on the H200 with v51's down kernel (down 1, the default)
# against the old one (down 0): the instrumented build's timeline (gptoss_cuda_timeline, NOTES v13: relations, not
# absolute times), ROUNDS (2) rounds of each, gate_up 0 (the H200's default), the mean table printed, every table in
# $OUT. Binaries staged with EXTRA_TARGETS=gptoss_cuda_timeline in .gpu-X, carried packed as .gpu-XZ/x.tar.xz.
. "$(dirname "$0")/env.sh" .gpu-X
begin_lab_call .gpu-XZ/x.tar.xz
for r in $(seq "${ROUNDS:-2}"); do
  for dn in 0 1; do
    echo "== round $r down $dn"
    timeout 60 "$B/gptoss_cuda_timeline" 5 0 "$dn" > "$OUT/timeline-dn$dn-r$r.txt" 2>&1 || status=1
    sed -n '/first start -> last end/p; /^mean over layers/,/^$/p' "$OUT/timeline-dn$dn-r$r.txt" | head -24
  done
done
date -u
exit $status
