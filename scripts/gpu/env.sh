# Sourced by the scripts in scripts/gpu that run on the GPU machine: `. "$(dirname "$0")/env.sh" .gpu-X`.
# Moves to the repo root and sets S (the staged folder: $STAGE_DIR, else the argument), B=$S/bin, the staged
# libraries and the CUDA toolkit's (cuBLAS) on the loader's path, GPTOSS_SOURCE_DIR (the tests' data from this
# tree, not from where the binaries were built), status=0 and TINY (the 27 tokens of the tiny model's decode
# check); strict pipes and unset variables.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
S=${STAGE_DIR:-$1}
B=$S/bin
export LD_LIBRARY_PATH="$PWD/$S/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export GPTOSS_SOURCE_DIR="$PWD"
status=0
TINY=358,318,174,506,238,110,432,82,439,313,58,22,227,18,72,263,496,238,413,469,421,322,225,263,136,254,194
# The staged binaries from the xz pack a call carried, when $B has no gptoss_cuda_lab yet: unpack_stage PACK.
unpack_stage() { [ -x "$B/gptoss_cuda_lab" ] || { mkdir -p "$S" && tar -C "$S" -xJf "$1"; }; }
# When and on what: the time, the card, the commit the binaries were built from.
print_card() {
  date -u
  nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv,noheader
  head -1 "$S/COMMIT"
}
# The batched decode's exactness checks: backend_cuda_moe_gemm_test, then the tiny and tiny_e128 graph decode
# checks against the exact CPU path at BATCHES (default 1,8,16,64; 8 sequences), their lines matching PATTERN
# printed: batched_checks [PATTERN [BATCHES]].
batched_checks() {
  local pat=${1:-batch 64|decode check} batches=${2:-1,8,16,64}
  "$B/backend_cuda_moe_gemm_test" 2>&1 | grep -E "^\[  (PASSED|FAILED) " || status=1
  "$B/gptoss_cuda_decode_check" tests/data/tiny/model --tokens 358,318,174,506,238,110,432 --tol 1e-4 \
    --batch "$batches" --seqs 8 2>&1 | grep -E "$pat" || status=1
  "$B/gptoss_cuda_decode_check" tests/data/tiny_e128/model --tokens 158,18,174,206,238,110,43 --tol 1e-4 \
    --batch "$batches" --seqs 8 2>&1 | grep -E "$pat" || status=1
}
# The random 20b at MODEL against the exact CPU path at BATCHES (2 sequences, every core), with the environment
# switch VAR=VALUE: r20_check VAR VALUE MODEL BATCHES.
r20_check() {
  echo "== random 20b vs the exact CPU path, $1=$2 $(date -u +%T)"
  env "$1=$2" "$B/gptoss_cuda_decode_check" "$3" --tokens 200005,1000,2000,3000 --tol 1e-4 --batch "$4" --seqs 2 \
    --threads "$(nproc)" 2>&1 | grep -E "vs cpu|decode check" || status=1
}
# ROUNDS (2) rounds of `gptoss bench MODEL --device cuda -p 128 -n 128 --parallel 1,16,64`: $B/gptoss-old (with
# VAR=0), then $B/gptoss with VAR set to each of VARIANTS: cli_rounds VAR MODEL "VARIANTS".
cli_rounds() {
  local r v bin
  for r in $(seq "${ROUNDS:-2}"); do
    for v in old $3; do
      echo "== CLI round $r $v $(date -u +%T)"
      if [ "$v" = old ]; then bin=$B/gptoss-old; else bin=$B/gptoss; fi
      env "$1=${v/old/0}" timeout 200 "$bin" bench "$2" --device cuda -p 128 -n 128 --parallel 1,16,64 2>&1 \
        | grep -E '^\|' || status=1
    done
  done
}
# The random 20b at $R20 (default /tmp/peers/r20), written in the background unless it is there (r20_start: its index,
# which the writer writes last); r20_wait waits for that writer, if one was started, and prints its exit status.
r20_start() {
  R20=${R20:-/tmp/peers/r20}
  if [ ! -f "$R20/model.safetensors.index.json" ]; then
    mkdir -p "$(dirname "$R20")"
    timeout 240 python3 tools/make_random_checkpoint.py --preset 20b --out "$R20" --quiet &
    r20_pid=$!
  fi
}
r20_wait() { if [ -n "${r20_pid:-}" ]; then wait "$r20_pid"; echo "random 20b written: rc=$?"; fi; }
# ROUNDS (2) rounds of the lab's default engine at BATCHES (8 16 32 64 sequences) with VAR set to each of VALUES in
# turn, rows interleaved: lab_rounds VAR "VALUES" [TIMEOUT (120)].
lab_rounds() {
  local r v
  for r in $(seq "${ROUNDS:-2}"); do
    for v in $2; do
      echo "== round $r $1=$v $(date -u +%T)"
      env "$1=$v" LAB_ENGINES=5 LAB_BATCHES="${BATCHES:-8 16 32 64}" timeout "${3:-120}" "$B/gptoss_cuda_lab" batched 1 \
        2>&1 | grep -E "copy|default" || status=1
    done
  done
}
# One round of `gptoss bench $R20 --device cuda -p 128 -n 128 --parallel 1,16,64` per argument, each argument a set of
# environment assignments ("VAR=V" or "VAR=V VAR2=V2"): cli_with ASSIGNMENTS...
cli_with() {
  local a
  for a in "$@"; do
    echo "== CLI $a $(date -u +%T)"
    # shellcheck disable=SC2086  # $a is split into its assignments on purpose
    env $a timeout 200 "$B/gptoss" bench "$R20" --device cuda -p 128 -n 128 --parallel 1,16,64 2>&1 \
      | grep -E '^\|  ' || status=1
  done
}
# The start of an experiment call: OUT (default /tmp/gptoss-gpu) made, the staged binaries unpacked from PACK, the card
# printed, the random 20b started: begin_call PACK.
begin_call() {
  begin_lab_call "$1"
  r20_start
}
# begin_call without the random 20b, for calls whose timed rows should not share the CPU with its writer:
# begin_lab_call PACK.
begin_lab_call() {
  OUT=${OUT:-/tmp/gptoss-gpu}
  mkdir -p "$OUT"
  unpack_stage "$1"
  print_card
}
# backend_cuda_test into $OUT/backend_cuda_test.txt, its PASSED / FAILED lines printed.
cuda_tests() {
  "$B/backend_cuda_test" > "$OUT/backend_cuda_test.txt" 2>&1 || status=1
  grep -E "^\[  (PASSED|FAILED) " "$OUT/backend_cuda_test.txt"
}
# The lab's checks (every kernel variant against the CPU double reference) into $OUT/lab-check.txt, the lines matching
# PATTERN (default: failures and the summary) printed: lab_checks [PATTERN].
lab_checks() {
  "$B/gptoss_cuda_lab" check > "$OUT/lab-check.txt" 2>&1 || status=1
  grep -E "${1:-FAIL|checks:}" "$OUT/lab-check.txt"
}
# `gptoss_cuda_lab bench 128` with the caller's LAB_* settings (LAB_DECODE_ONLY 1 unless set: the batch-1 decode rows
# alone) into $OUT/lab.txt, within LAB_TIMEOUT (300) seconds, the lines matching PATTERN (default: the copy bandwidth
# and the decode rows) printed: [LAB_...=...] lab_rows [PATTERN].
lab_rows() {
  echo "== lab $(date -u +%T)"
  LAB_DECODE_ONLY=${LAB_DECODE_ONLY-1} timeout "${LAB_TIMEOUT:-300}" "$B/gptoss_cuda_lab" bench 128 > "$OUT/lab.txt" \
    2>&1 || status=1
  grep -E "${1:-copy|gu[0-9] dn}" "$OUT/lab.txt"
}
# The tiny decode check against the exact CPU path once per kernel-shape set (the decode check's --shapes G,GU,DN[,R[,A]]),
# with its further ARGS: tiny_shapes "SHAPES SHAPES ..." [ARGS...].
tiny_shapes() {
  local sh list=$1
  shift
  for sh in $list; do
    echo "== tiny, shapes $sh"
    "$B/gptoss_cuda_decode_check" tests/data/tiny/model --tokens "$TINY" --tol 1e-4 --shapes "$sh" "$@" 2>&1 |
      grep -E "vs cpu|decode check|rror" || status=1
  done
}
# The random 20b at $R20 against the exact CPU path (6 tokens, every core) once per kernel-shape set:
# r20_shapes "SHAPES SHAPES ...".
r20_shapes() {
  local sh
  for sh in $1; do
    echo "== random 20b vs the exact CPU path, shapes $sh $(date -u +%T)"
    "$B/gptoss_cuda_decode_check" "$R20" --tokens 200005,1000,2000,3000,4000,5000 --tol 1e-4 --shapes "$sh" \
      --threads "$(nproc)" 2>&1 | grep -E "vs cpu|decode check|rror" || status=1
  done
}
# compute-sanitizer memcheck on the tiny decode check (5 tokens) with the decode check's further ARGS, its lines
# matching PATTERN (may be empty) and the error summary printed: tiny_memcheck PATTERN [ARGS...].
tiny_memcheck() {
  local pat=$1
  shift
  compute-sanitizer --tool memcheck --leak-check no "$B/gptoss_cuda_decode_check" tests/data/tiny/model \
    --tokens 358,318,174,506,238 --tol 1e-4 "$@" 2>&1 | grep -E "${pat:+$pat|}ERROR SUMMARY" || status=1
}
# ncu on COUNT (2) consecutive launches of the kernels whose mangled names match REGEX, after SKIP, while CMD runs, with
# the stall and source sections: the report $OUT/NAME.ncu-rep, its details ($OUT/details.txt) and per-SASS source page
# ($OUT/sass.csv.gz); the details' lines matching KEYS printed: ncu_kernels NAME REGEX SKIP KEYS CMD...
ncu_kernels() {
  local name=$1 regex=$2 skip=$3 keys=$4
  shift 4
  ncu --version | tail -1
  timeout 400 ncu -f --kernel-name-base mangled -k "regex:$regex" --launch-skip "$skip" --launch-count "${COUNT:-2}" \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis --section WarpStateStats \
    --section SchedulerStats --section Occupancy --section LaunchStats --section SourceCounters \
    --section InstructionStats -o "$OUT/$name" "$@" > "$OUT/ncu-run.txt" 2>&1 || status=1
  tail -3 "$OUT/ncu-run.txt"
  ncu -i "$OUT/$name.ncu-rep" --page details --print-details all > "$OUT/details.txt" 2>&1 || status=1
  ncu -i "$OUT/$name.ncu-rep" --page source --csv --print-source sass > "$OUT/sass.csv" 2>&1 || status=1
  grep -E "$keys" "$OUT/details.txt" | sed 's/  */ /g' | cut -c1-140 | head -80
  gzip -f "$OUT/sass.csv"
}
# The random 20b's 70-token prompt (random.seed(3) ids) through each named binary-and-environment in one
# forward, and once through the exact CPU path; each against the CPU (max relative error, argmax) and bit for bit
# against the first: logits70 NAME=ASSIGNMENTS:BINARY ... (ASSIGNMENTS "VAR=V[,VAR2=V2]" or "-", BINARY under $B).
logits70() {
  local spec name rest envs bin names="" tok
  tok=$(python3 -c "import random; random.seed(3); print(','.join(str(random.randrange(200000)) for _ in range(70)))")
  for spec in "$@"; do
    name=${spec%%=*} rest=${spec#*=} envs=${rest%%:*} bin=${rest#*:}
    [ "$envs" = - ] && envs=""
    # shellcheck disable=SC2086  # the assignments are split on purpose
    env ${envs//,/ } "$B/$bin" logits "$R20" --tokens "$tok" --device cuda --out "/tmp/$name.safetensors" \
      > /dev/null 2>&1 || status=1
    names="$names $name"
  done
  timeout 300 "$B/gptoss" logits "$R20" --tokens "$tok" --device cpu --threads "$(nproc)" \
    --out /tmp/cpu.safetensors > /dev/null 2>&1 || status=1
  NAMES="$names" python3 - <<'PY' || status=1
import os
import numpy as np
from safetensors.numpy import load_file
names = os.environ["NAMES"].split()
L = {n: load_file(f"/tmp/{n}.safetensors")["logits_0"].astype(np.float64) for n in names + ["cpu"]}
ref = L["cpu"].reshape(-1, L["cpu"].shape[-1])
for n in names:
    got = L[n].reshape(ref.shape)
    rel = np.abs(got - ref).max(axis=1) / np.abs(ref).max(axis=1)
    print(f"{n}: vs cpu max rel err {rel.max():.3e}, argmax {(got.argmax(1) == ref.argmax(1)).sum()}/{ref.shape[0]}, "
          f"bit-identical to {names[0]}: {np.array_equal(L[n], L[names[0]])}")
PY
}
# ROUNDS (3) interleaved rounds of the lab's batch-1 rows (`bench 128`, LAB_MOE_ROUNDS=1, LAB_DECODE_ONLY=1, the
# caller's other LAB_* settings) from each staged binary in BINS: lab_bin_rounds "BINS".
lab_bin_rounds() {
  local r b
  for r in $(seq "${ROUNDS:-3}"); do
    for b in $1; do
      echo "== round $r $b $(date -u +%T)"
      LAB_MOE_ROUNDS=1 LAB_DECODE_ONLY=1 timeout 100 "$B/$b" bench 128 2>&1 | grep -E "gu[0-9] dn" || status=1
    done
  done
}
# ROUNDS (3) interleaved rounds of the lab's default batched engine at 8 16 32 64 sequences from each staged binary in
# BINS: batched_bin_rounds "BINS".
batched_bin_rounds() {
  local r b
  for r in $(seq "${ROUNDS:-3}"); do
    for b in $1; do
      echo "== batched round $r $b $(date -u +%T)"
      LAB_ENGINES=5 LAB_BATCHES="8 16 32 64" timeout 120 "$B/$b" batched 1 2>&1 | grep -E "default" || status=1
    done
  done
}
# CLI_ROUNDS (2) interleaved rounds of `gptoss bench $R20 --device cuda ARGS...` from each staged binary in BINS, the
# lines matching CLI_PAT (default: the tables' rows) printed: cli_bin_rounds "BINS" ARGS...
cli_bin_rounds() {
  local r b bins=$1
  shift
  for r in $(seq "${CLI_ROUNDS:-2}"); do
    for b in $bins; do
      echo "== CLI round $r $b $(date -u +%T)"
      timeout 200 "$B/$b" bench "$R20" --device cuda "$@" 2>&1 | grep -E "${CLI_PAT:-^\| *(gpt|[0-9])}" || status=1
    done
  done
}
