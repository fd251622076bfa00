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

# staged_env (after env.sh): the run's head lines (time, card, the commit the binaries were built from).
staged_env() {
  date -u
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem,driver_version --format=csv
  cat "$S/COMMIT" 2>/dev/null
}
