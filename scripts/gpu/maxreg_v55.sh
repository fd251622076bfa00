#!/usr/bin/env bash
# On the GPU machine (NOTES v55; the switches are commit 1947e8e's, removed after:
# check it out to run this again): router variants 6 and 7 (v17's cluster router under __maxnreg__ 96 / 88, so that
# a block fits beside two of o_proj's blocks) against variant 4 (the default), one binary. Binaries staged in .gpu-X,
# carried packed as .gpu-XZ/x.tar.xz.
#   1. the lab's checks (6 and 7 bit for bit against variant 2); the tiny decode check with each, memcheck;
#   2. ROUNDS (3) rounds of the lab's batch-1 decode rows, routers 4, 6, 7 interleaved.
. "$(dirname "$0")/env.sh" .gpu-X
begin_lab_call .gpu-XZ/x.tar.xz
lab_checks "FAIL|same|checks:" | tail -8
tiny_shapes "1,0,1,4 1,0,1,6 1,0,1,7"
tiny_memcheck "" --shapes 1,0,1,7
LAB_MOE_PAIRS="0,1" LAB_ROUTERS="4 6 7" LAB_MOE_ROUNDS=${ROUNDS:-3} lab_rows
date -u
exit $status
