#!/usr/bin/env bash
# On the GPU machine (NOTES v51; the switches are commit 66ccd0f's, folded into one down kernel in the commit after
# e58c955: check 66ccd0f out to run this again): batch-1 MoE kernels whose warps copy only their own slice of the input row (no
# block barrier before the first MMA: gate_up variant 2, down variant 1) and down as clusters of k / 2 blocks of two
# slots each (down variant 2; 3 = both), against the defaults (0,0) in one binary (lab pairs "GU,DN"). Binaries
# staged in .gpu-X, carried packed as .gpu-XZ/x.tar.xz. Long outputs go to $OUT (they come back whole).
#   1. backend_cuda_test; the lab's checks (every variant against the CPU double reference); the tiny decode check
#      against the exact CPU path with each pair (the same sums in the same order: the default's numbers expected);
#      memcheck on it with 2,3;
#   2. the random 20b (written here) against the exact CPU path with 0,0 and 2,3;
#   3. ROUNDS (3) rounds of the lab's batch-1 decode rows (positions 4..131), the pairs interleaved.
. "$(dirname "$0")/env.sh" .gpu-X
begin_call .gpu-XZ/x.tar.xz
cuda_tests
lab_checks
tiny_shapes "1,0,0 1,2,0 1,0,1 1,0,2 1,0,3 1,2,3" --batch 1,4 --seqs 2
tiny_memcheck "" --shapes 1,2,3
r20_wait
r20_shapes "1,0,0 1,2,3"
LAB_MOE_PAIRS="${PAIRS:-0,0 2,0 0,1 0,2 0,3 2,3}" LAB_MOE_ROUNDS=${ROUNDS:-3} lab_rows
date -u
exit $status
