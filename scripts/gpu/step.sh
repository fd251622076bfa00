# Sourced by the GPU scripts. step LOG TIMEOUT CMD...: prints the command, runs it under
# `timeout TIMEOUT` with its output in ${STEP_LOGS:-$OUT}/LOG, prints the log's last $TAIL lines
# (TAIL unset or 0: none) and the exit status with the seconds taken; a failure sets status=1.
step() {
  local log=${STEP_LOGS:-$OUT}/$1 limit=$2 t0=$SECONDS
  shift 2
  echo "=== $* ==="
  timeout "$limit" "$@" > "$log" 2>&1
  local rc=$?
  if [ "${TAIL:-0}" -gt 0 ]; then tail -n "$TAIL" "$log"; fi
  echo "=== rc=$rc in $((SECONDS - t0)) s (at $SECONDS s)"
  [ $rc -eq 0 ] || status=1
}

# staged_env (after S, the dir scripts/gpu/stage.sh made, is set): its libraries and this checkout's test data
# for the binaries, status=0, and the run's head lines (time, card, the commit the binaries were built from).
# TINY: the 27 tokens of the tiny model's decode check.
staged_env() {
  export LD_LIBRARY_PATH="$PWD/$S/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
  export GPTOSS_SOURCE_DIR="$PWD"
  status=0
  date -u
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem,driver_version --format=csv
  cat "$S/COMMIT" 2>/dev/null
}
TINY=358,318,174,506,238,110,432,82,439,313,58,22,227,18,72,263,496,238,413,469,421,322,225,263,136,254,194
