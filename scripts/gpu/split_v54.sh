#!/usr/bin/env bash
# On the GPU machine (NOTES v54; the switch is commit 7e4afcc's, removed in the next commit: check it
# out to run this again): down variant 2 (v51's 2-slot clusters whose block 1 arrives at the final cluster barrier
# (release) and exits, block 0 alone waiting (acquire)) against variant 1 (the default), one binary. Binaries staged
# in .gpu-X, carried packed as .gpu-XZ/x.tar.xz.
#   1. the lab's checks; the tiny decode check with down 2 (the same sums: the default's numbers expected), memcheck;
#   2. ROUNDS (3) rounds of the lab's batch-1 rows (4..131) and step-io rows (4..131, 512..639), interleaved.
. "$(dirname "$0")/env.sh" .gpu-X
begin_lab_call .gpu-XZ/x.tar.xz
lab_checks
tiny_shapes 1,0,2 --batch 1,4 --seqs 2
tiny_memcheck "" --shapes 1,0,2
LAB_MOE_PAIRS="0,1 0,2" LAB_MOE_ROUNDS=${ROUNDS:-3} LAB_STEP_IO=7 LAB_STEP_IO_MOE="0,1 0,2" LAB_STEP_IO_ROUNDS=${ROUNDS:-3} \
  LAB_DECODE_ONLY=0 lab_rows "copy|gu[0-9] dn[0-9] r|io7 b"
date -u
exit $status
