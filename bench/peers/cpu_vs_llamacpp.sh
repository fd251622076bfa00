#!/usr/bin/env bash
# gptoss (cpu-fast) against llama.cpp (llama-bench, CPU build) on the same full-size random
# gpt-oss-20b weights, in one run on this machine (issue 7): read bandwidth measured in the same run,
# then gptoss bench and llama-bench interleaved (ROUNDS rounds), each with its weights warm (gptoss's
# safetensors are read into the page cache first, and the share of them held in 2 MB folios logged),
# then the bandwidth again; prints the table, the roofline fractions and the ratios.
# llama.cpp is built and its GGUF converted outside the repo (bench/results/cpu-20b-vs-llamacpp.md
# gives the commands); llama.cpp's code never enters the repo.
#
#   GPTOSS=build-peers/bin/gptoss LLAMA_BENCH=/work/peers/build-cpu/bin/llama-bench \
#   MODEL=/tmp/r20/gpt-oss-20b-random GGUF=/work/peers/gguf/gpt-oss-20b-random-bf16-mxfp4.gguf \
#   bench/peers/cpu_vs_llamacpp.sh
#
# Knobs: THREADS (2), P (512), N (128), ROUNDS (2), REPS (1, repetitions inside each bench process),
# FRESH (0; 1: each engine's weights dropped from the page cache before its round, see warm()),
# DEVICES ("cpu-fast"; e.g. "cpu-fast auto": each round runs every one), ROUND_DEVICES (instead:
# round r runs only its r-th word, e.g. "cpu-fast auto"), OUT (output folder, default /tmp/peers-cpu-<time>).
#
# Bracketed decode (BRACKET=K, after the rounds; ROUNDS=0 runs it alone): the two read-bandwidth
# measurements at a run's ends can differ by half (this VM's bus moves by the minute), so here every
# decode rep (tg BRACKET_N, one process each, one rep) sits between two short bandwidth measurements
# (THREADS threads and 1 thread, over 4 KB and over 2 MB pages, BW_MB MB, BW_PASSES passes) and
# bench/peers/bracketed.py reports each rep's fraction tok/s x bytes per token / mean(best before,
# best after) with the spread, against each page size. Per engine
# one block (the weights of both engines do not fit the page cache together): gptoss's block (its
# weights warmed as for a round) runs K reps of every variant in BRACKET_GPTOSS, alternating
# ("label" or "label:VAR=VALUE,VAR=VALUE": the same binary with those environment variables), then
# llama.cpp's block K reps (BRACKET_LLAMA=0: none). Knobs: BRACKET_N (64), BW_MB (1024), BW_PASSES (5).
set -uo pipefail
cd "$(dirname "$0")/../.."
GPTOSS=${GPTOSS:-build-peers/bin/gptoss}
LLAMA_BENCH=${LLAMA_BENCH:-/work/peers/build-cpu/bin/llama-bench}
MODEL=${MODEL:-/tmp/r20/gpt-oss-20b-random}
GGUF=${GGUF:-/work/peers/gguf/gpt-oss-20b-random-bf16-mxfp4.gguf}
THREADS=${THREADS:-2}
P=${P:-512}
N=${N:-128}
ROUNDS=${ROUNDS:-2}
REPS=${REPS:-1}
DEVICES=${DEVICES:-cpu-fast}
OUT=${OUT:-/tmp/peers-cpu-$(date +%H%M%S)}
BRACKET=${BRACKET:-0}
BRACKET_N=${BRACKET_N:-64}
BRACKET_GPTOSS=${BRACKET_GPTOSS:-gptoss}
BRACKET_LLAMA=${BRACKET_LLAMA:-1}
BW_MB=${BW_MB:-1024}
BW_PASSES=${BW_PASSES:-5}
mkdir -p "$OUT/runs"
for f in "$GPTOSS" "$LLAMA_BENCH" "$GGUF" "$MODEL/config.json"; do
  [ -e "$f" ] || { echo "missing $f" >&2; exit 1; }
done
BW=$OUT/read_bandwidth
cc -O3 -march=native -pthread bench/peers/read_bandwidth.c -o "$BW" || exit 1

log() { echo "[$(date +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)] $*" | tee -a "$OUT/log.txt"; }
# Bring a set of files into the page cache (reads each once; cheap when already cached). FRESH=1:
# drop their pages from the cache first (POSIX_FADV_DONTNEED: only pages no process maps), so that
# they are read anew, in the large folios a read() gets when memory is free, whatever folios the
# cache held them in before (bench/results/cpu-20b-vs-llamacpp.md: decode is slower over 4 KB pages).
evict() {
  python3 -c 'import os, sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' "$@"
}
warm() {
  local t0=$SECONDS
  [ "${FRESH:-0}" = 1 ] && evict "$@"
  cat "$@" > /dev/null
  log "warmed${FRESH:+ (FRESH=$FRESH)} $(du -shL "$@" | awk '{s=s" "$1} END{print s}') in $((SECONDS - t0)) s"
}
bandwidth() {
  local line
  line=$("$BW" "$THREADS" 2048 10)
  log "$line"
  echo "$line" | sed -n 's/.*best \([0-9.]*\) GB\/s.*/\1/p' >> "$OUT/bandwidth.txt"
}
# One bracket into bracket.tsv, short: the bandwidth on THREADS threads and on 1 (the bus per core),
# each over 4 KB pages (read_bandwidth's default, the measurement of the rounds) and over 2 MB pages
# (PAGES 2m: how the weights are mapped, 98-99% PMD-mapped after warm(); faster in slow minutes).
bracket_bw() {
  local m line best=() med=""
  for m in "$THREADS 4k" "1 4k" "$THREADS 2m" "1 2m"; do
    line=$("$BW" ${m% *} "$BW_MB" "$BW_PASSES" ${m#* })
    log "$line"
    best+=("$(echo "$line" | sed -n 's/.*best \([0-9.]*\) GB\/s.*/\1/p')")
    [ -n "$med" ] || med=$(echo "$line" | sed -n 's/.*median \([0-9.]*\) GB\/s.*/\1/p')
  done
  printf 'bw\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date +%H:%M:%S)" "${best[0]}" "$med" "${best[1]}" "${best[2]}" \
    "${best[3]}" >> "$OUT/bracket.tsv"
}
# One bracketed rep: "run <time> <label> <tok/s>" into bracket.tsv (tok/s empty when the run failed).
bracket_rep() {
  local label=$1 json=$2 tps=$3
  log "$label rep: $tps tok/s ($json)"
  printf 'run\t%s\t%s\t%s\n' "$(date +%H:%M:%S)" "$label" "$tps" >> "$OUT/bracket.tsv"
}
bracketed() {
  local k v label envs json tps
  : > "$OUT/bracket.tsv"
  warm "$MODEL"/*.safetensors
  log "page cache: $(python3 bench/peers/pmd_mapped.py "$MODEL"/*.safetensors)"
  bracket_bw
  for k in $(seq 1 "$BRACKET"); do
    for v in $BRACKET_GPTOSS; do
      label=${v%%:*}
      envs=""
      [ "$label" = "$v" ] || envs=${v#*:}
      json=$OUT/runs/bracket-$label-$k.json
      env ${envs//,/ } "$GPTOSS" bench "$MODEL" -p 0 -n "$BRACKET_N" -r 1 --threads "$THREADS" \
        --device cpu-fast --json > "$json" 2> "${json%.json}.err"
      tps=$(python3 -c 'import json, sys; print(round(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["decode_tokens_per_s"], 3))' "$json" 2>/dev/null)
      bracket_rep "$label${envs:+ ($envs)}" "$json" "$tps"
      bracket_bw
    done
  done
  [ "$BRACKET_LLAMA" = 1 ] || return 0
  [ "${FRESH:-0}" = 1 ] && evict "$GGUF" && log "FRESH=1: the GGUF's pages dropped from the page cache"
  bracket_bw
  for k in $(seq 1 "$BRACKET"); do
    json=$OUT/runs/bracket-llama-$k.json
    "$LLAMA_BENCH" -m "$GGUF" -p 0 -n "$BRACKET_N" -r 1 -t "$THREADS" -o json > "$json" 2> "${json%.json}.err"
    tps=$(python3 -c 'import json, sys; print(round([t for t in json.load(open(sys.argv[1])) if t["n_gen"] > 0][0]["avg_ts"], 3))' "$json" 2>/dev/null)
    bracket_rep llama.cpp "$json" "$tps"
    bracket_bw
  done
}

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus; $(free -g | awk '/Mem:/ {print $2 " GiB RAM"}')"
  echo "gptoss: $(git rev-parse --short HEAD) ($(git status --porcelain --untracked-files=no | wc -l) files modified in the tree)"
  echo "gptoss binary: $GPTOSS ($(stat -c %y "$GPTOSS" | cut -d. -f1))"
  echo "llama-bench: $LLAMA_BENCH; $("$LLAMA_BENCH" --version 2>&1 | head -2 | tr '\n' ' ')"
  echo "model: $MODEL; gguf: $GGUF ($(stat -c %s "$GGUF") bytes)"
  echo "threads $THREADS, -p $P -n $N, rounds $ROUNDS, reps $REPS, devices ${ROUND_DEVICES:-$DEVICES}${ROUND_DEVICES:+ (one per round)}"
  [ "$BRACKET" -gt 0 ] && echo "bracketed: $BRACKET reps of tg$BRACKET_N per variant: $BRACKET_GPTOSS$([ "$BRACKET_LLAMA" = 1 ] && echo " llama.cpp"); bandwidth $BW_MB MB, $BW_PASSES passes"
} | tee "$OUT/setup.txt"
: > "$OUT/bandwidth.txt"
bandwidth
for r in $(seq 1 "$ROUNDS"); do
  devs=$DEVICES
  [ -z "${ROUND_DEVICES:-}" ] || devs=$(echo "$ROUND_DEVICES" | awk -v r="$r" '{print $(((r - 1) % NF) + 1)}')
  for dev in $devs; do
    warm "$MODEL"/*.safetensors
    # The page cache's 2 MB share of the weights (decode is slower over 4 KB pages; pmd_mapped.py).
    log "page cache: $(python3 bench/peers/pmd_mapped.py "$MODEL"/*.safetensors)"
    log "gptoss --device $dev round $r"
    bench/tools/peak_memory.py -- "$GPTOSS" bench "$MODEL" -p "$P" -n "$N" -r "$REPS" --threads "$THREADS" \
      --device "$dev" --json > "$OUT/runs/gptoss-$dev-$r.json" 2> "$OUT/runs/gptoss-$dev-$r.err"
    log "rc=$? $(cat "$OUT/runs/gptoss-$dev-$r.json") $(tail -1 "$OUT/runs/gptoss-$dev-$r.err")"
  done
  # No warm-up read of the GGUF: llama.cpp reads it whole while loading (untimed) and copies the
  # experts into its repacked buffers; its own warm-up run then touches the rest.
  [ "${FRESH:-0}" = 1 ] && evict "$GGUF" && log "FRESH=1: the GGUF's pages dropped from the page cache"
  log "llama-bench round $r"
  bench/tools/peak_memory.py -- "$LLAMA_BENCH" -m "$GGUF" -p "$P" -n "$N" -r "$REPS" -t "$THREADS" -o json \
    > "$OUT/runs/llama-$r.json" 2> "$OUT/runs/llama-$r.err"
  log "rc=$? $(python3 -c 'import json,sys; print([(t["n_prompt"], t["n_gen"], round(t["avg_ts"], 3)) for t in json.load(open(sys.argv[1]))])' "$OUT/runs/llama-$r.json" 2>&1) $(tail -1 "$OUT/runs/llama-$r.err")"
done
if [ "$BRACKET" -gt 0 ]; then
  log "bracketed decode: $BRACKET reps of tg$BRACKET_N per variant ($BRACKET_GPTOSS$([ "$BRACKET_LLAMA" = 1 ] && echo ", llama.cpp"))"
  bracketed
fi
bandwidth
[ "$BRACKET" -gt 0 ] && python3 bench/peers/bracketed.py "$OUT/bracket.tsv" \
  --bytes-per-token "$(python3 bench/peers/bytes_per_token.py "$MODEL")" | tee "$OUT/bracketed.md"
[ "$ROUNDS" -gt 0 ] || { echo "logs: $OUT"; exit 0; }
python3 bench/peers/summarize.py "$OUT/runs" --what "read" --bandwidth-gbs $(cat "$OUT/bandwidth.txt") \
  --bytes-per-token "$(python3 bench/peers/bytes_per_token.py "$MODEL")" | tee "$OUT/summary.md"
echo "logs: $OUT"
