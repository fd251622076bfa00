#!/usr/bin/env bash
# On the GPU machine: gpt-oss-120b's shapes on the CUDA backend (random weights from
# tools/make_random_checkpoint.py --preset 120b, ~63.5 GB, written to R120, default /dev/shm/r120: the
# machine's disk has 64 GiB). STAGE_DIR (default .gpu-120) holds gptoss, gptoss_cuda_decode_check and
# gptoss_cuda_lab from scripts/gpu/stage.sh. PARTS picks what runs (default "write check bench"):
#   write  the checkpoint, unless R120 has one already (the machine keeps /dev/shm while it stays warm)
#   check  gptoss info; CUDA (op path and graph decode engine) against the exact CPU path on 6 tokens
#   logits `gptoss logits` of 6 tokens on cpu (exact), cpu-fast (f32 experts: another summation order, no GPU),
#          cuda (one call) and cuda --step 1, each against cpu by scripts/gpu/r120_logits.py; also for the random 20b
#          at R20 (written there first) when R20 is set: how far a summation order alone moves each checkpoint
#   bench  the copy bandwidth (the lab's first line); `gptoss bench -p 512 -n 128` (decode as a fraction of
#          the copy roofline, by bench/peers/bytes_per_token.py); `--parallel 1,16,64 -p 128 -n 128`
. "$(dirname "$0")/env.sh" .gpu-120
M=${R120:-/dev/shm/r120}
OUT=${OUT:-/tmp/gptoss-120}
mkdir -p "$OUT"
PARTS=" ${PARTS:-write check bench} "
date -u
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv,noheader
cat "$S/COMMIT" 2>/dev/null
if [[ $PARTS == *" write "* ]]; then
  df -h /dev/shm /tmp | sed 1d; free -g | sed -n 2p
  if [ ! -f "$M/config.json" ]; then
    t0=$SECONDS
    python3 tools/make_random_checkpoint.py --preset 120b --out "$M" --quiet || status=1
    echo "== 120b written in $((SECONDS - t0)) s: $(du -sh "$M" | cut -f1)"
  else
    echo "== 120b already at $M: $(du -sh "$M" | cut -f1)"
  fi
fi
if [[ $PARTS == *" check "* ]]; then
  "$B/gptoss" info "$M" 2>&1 | head -40
  t0=$SECONDS
  timeout 500 "$B/gptoss_cuda_decode_check" "$M" --tokens 200005,1000,2000,3000,4000,5000 --tol 1e-4 \
    --threads "$(nproc)" > "$OUT/check.txt" 2>&1 || status=1
  echo "== 120b vs the exact CPU path ($((SECONDS - t0)) s)"; grep -E "vs cpu|eager vs|decode check|rror" "$OUT/check.txt"
fi
if [[ $PARTS == *" logits "* ]]; then
  T=200005,1000,2000,3000,4000,5000
  if [ -n "${R20:-}" ] && [ ! -f "$R20/config.json" ]; then
    python3 tools/make_random_checkpoint.py --preset 20b --out "$R20" --quiet || status=1
  fi
  for m in "$M" ${R20:-}; do
    n=$(basename "$m")
    for d in cpu cpu-fast cuda cuda1; do
      t0=$SECONDS
      dev=${d%1}; step=(); [ "$d" = cuda1 ] && step=(--step 1)
      GPTOSS_CPU_FAST_MOE_I8=0 timeout 300 "$B/gptoss" logits "$m" --tokens $T --device "$dev" "${step[@]}" \
        --threads "$(nproc)" --out "$OUT/$n-$d.st" > "$OUT/$n-$d.log" 2>&1 || { status=1; tail -3 "$OUT/$n-$d.log"; }
      echo "== $n $d: $((SECONDS - t0)) s"
    done
    python3 scripts/gpu/r120_logits.py "$OUT/$n-cpu.st" "$OUT/$n-cpu-fast.st" "$OUT/$n-cuda.st" "$OUT/$n-cuda1.st" ||
      status=1
  done
fi
if [[ $PARTS == *" bench "* ]]; then
  LAB_DECODE_ONLY=1 "$B/gptoss_cuda_lab" bench 8 2>&1 | grep -E '^copy bandwidth'
  echo "bytes per token: $(python3 bench/peers/bytes_per_token.py "$M")"
  timeout 300 "$B/gptoss" bench "$M" --device cuda -p 512 -n 128 -r 3 2>&1 | tail -6 || status=1
  timeout 300 "$B/gptoss" bench "$M" --device cuda -p 128 -n 128 --parallel 1,16,64 2>&1 | tail -6 || status=1
fi
date -u
exit $status
