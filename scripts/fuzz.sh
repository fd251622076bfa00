#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang, ASan+UBSan) in build-fuzz/ and runs each on its
# committed corpus for a short budget. Any crash, leak, timeout or sanitizer report fails the script.
#   scripts/fuzz.sh                 # every target, FUZZ_SECONDS (default 20) each
#   FUZZ_SECONDS=600 scripts/fuzz.sh server_request   # one target, longer
# New inputs found go to a scratch corpus (build-fuzz/corpus/<target>), not the committed one;
# crash inputs are written to build-fuzz/crashes/<target>/. Inputs committed under
# tests/fuzz/crashes/<target>/ (past findings) are replayed first.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${FUZZ_BUILD:-build-fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-20}
JOBS=${FUZZ_JOBS:-2}
ALL=(safetensors safetensors_index config tiktoken tokenizer_json tokenize harmony_render harmony_parser server_request hub_api)
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL[@]}")

# Two fuzz.sh runs may share one build dir (a campaign runs targets side by side): one build at a time.
mkdir -p "$BUILD"
(
  flock 9
  cmake -S . -B "$BUILD" -G Ninja -DGPTOSS_FUZZ=ON -DGPTOSS_TESTS=OFF -DGPTOSS_CUDA=OFF \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
  cmake --build "$BUILD" -j"$JOBS" --target "${TARGETS[@]/#/fuzz_}"
) 9>"$BUILD/.fuzz-build.lock"

dict_for() {
  case "$1" in
    harmony_parser) echo "-dict=$ROOT/tests/fuzz/dict/harmony_parser.dict" ;;
    config|harmony_render|server_request|tokenizer_json|safetensors_index|hub_api) echo "-dict=$ROOT/tests/fuzz/dict/json.dict" ;;
  esac
}

fail=0
for t in "${TARGETS[@]}"; do
  scratch="$BUILD/corpus/$t"
  crashes="$BUILD/crashes/$t"
  mkdir -p "$scratch" "$crashes"
  # Inputs that once crashed (tests/fuzz/crashes/<target>/) must run clean.
  if compgen -G "$ROOT/tests/fuzz/crashes/$t/*" >/dev/null; then
    if ! "$BUILD/tests/fuzz/fuzz_$t" "$ROOT/tests/fuzz/crashes/$t/"* >"$BUILD/fuzz_${t}_crashes.log" 2>&1; then
      echo "FAIL fuzz_$t: a committed crash input fails again (log: $BUILD/fuzz_${t}_crashes.log)"
      tail -40 "$BUILD/fuzz_${t}_crashes.log"
      fail=1
    fi
  fi
  echo "== fuzz_$t: ${SECONDS_EACH}s"
  # shellcheck disable=SC2046
  if ! "$BUILD/tests/fuzz/fuzz_$t" $(dict_for "$t") -max_total_time="$SECONDS_EACH" \
      -timeout=10 -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="$crashes/" "$scratch" "$ROOT/tests/fuzz/corpus/$t" \
      >"$BUILD/fuzz_$t.log" 2>&1; then
    echo "FAIL fuzz_$t (log: $BUILD/fuzz_$t.log, inputs: $crashes/)"
    tail -40 "$BUILD/fuzz_$t.log"
    fail=1
  else
    grep -E "stat::number_of_executed_units|cov:" "$BUILD/fuzz_$t.log" | tail -2
  fi
done
exit $fail
