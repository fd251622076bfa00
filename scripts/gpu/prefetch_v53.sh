#!/usr/bin/env bash
# On the GPU machine (NOTES v53; the switches are commit 92a7666's, removed after: check it out to run this again):
# gemv variants 2-4 (shape 1 plus one L2 bulk prefetch per warp, right after the
# wait, of the row bytes it did not hold before it: 2 both kernels, 3 qkv's second rows, 4 o_proj's last columns)
# against shape 1 (the default), one binary. Binaries staged in .gpu-X, carried packed as .gpu-XZ/x.tar.xz.
#   1. the lab's checks (every GEMV shape against the CPU double reference); the tiny decode check with shape 2 (the
#      same sums: the default's numbers expected), and memcheck on it;
#   2. ROUNDS (3) rounds of the lab's batch-1 decode rows, the shapes interleaved.
. "$(dirname "$0")/env.sh" .gpu-X
begin_lab_call .gpu-XZ/x.tar.xz
lab_checks
tiny_shapes "1,0,1 2,0,1"
tiny_memcheck "" --shapes 2,0,1
LAB_GEMV="1 2 3 4" LAB_MOE_PAIRS="0,1" LAB_MOE_ROUNDS=${ROUNDS:-3} lab_rows
date -u
exit $status
