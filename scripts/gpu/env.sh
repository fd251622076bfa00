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
