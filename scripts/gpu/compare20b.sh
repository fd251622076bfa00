#!/usr/bin/env bash
# On the GPU machine (with .gpu/ from scripts/gpu/stage.sh carried): full-size random gpt-oss-20b,
# gptoss's exact cpu path and cuda backend against HF transformers (float32) on the same tokens.
# Writes $OUT/compare20b.json and the logs.
set -uo pipefail
cd "$(dirname "$0")/../.."
export LD_LIBRARY_PATH="$PWD/.gpu/lib:${LD_LIBRARY_PATH:-}"
OUT=${OUT:-/tmp/gptoss-gpu}
mkdir -p "$OUT"
M=/tmp/rand-20b
TOKENS=${TOKENS:-200006,17360,200008,1000,2000,3000,4000,5000}
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/card.txt"
[ -f $M/config.json ] || { time python3 tools/make_random_checkpoint.py --preset 20b --out $M --quiet; } 2>&1 | tee "$OUT/gen.txt"
( time .gpu/bin/gptoss logits $M --tokens $TOKENS --device cpu --threads "$(nproc)" --out /tmp/cpu.safetensors ) 2>&1 | tee "$OUT/cpu.txt"
( time .gpu/bin/gptoss logits $M --tokens $TOKENS --device cuda --out /tmp/cuda.safetensors ) 2>&1 | tee "$OUT/cuda.txt"
args=(--gptoss /tmp/cpu.safetensors)
[ -f /tmp/cuda.safetensors ] && args+=(--gptoss /tmp/cuda.safetensors)
python3 tools/compare_with_transformers.py --model $M --tokens $TOKENS "${args[@]}" 2>"$OUT/transformers-stderr.txt" | tee "$OUT/compare20b.json"
