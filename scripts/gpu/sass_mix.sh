#!/usr/bin/env bash
# On the GPU machine (cuobjdump is there, not here): static SASS instruction mix of the MoE kernels in
# a staged binary (default .gpu/bin/gptoss_cuda_lab), one table per kernel instantiation whose mangled
# name matches PATTERN (default gate_up_kernel|down_kernel): the opcode counts (modifiers dropped),
# IMAD split by its first modifier (MOV, SHL, WIDE, IADD, HI, X), the total and the instructions per HMMA (NOTES.md v14, v15). Usage: sass_mix.sh [BINARY [PATTERN]]
set -uo pipefail
BIN=${1:-.gpu/bin/gptoss_cuda_lab}
PAT=${2:-gate_up_kernel|down_kernel}
cuobjdump -sass "$BIN" | awk -v pat="$PAT" '
  /Function :/ { fn = $3; keep = (fn ~ pat); next }
  keep && /^ +\/\*[0-9a-f]+\*\/ / {
    line = $0; sub(/^ +\/\*[0-9a-f]+\*\/ +/, "", line); sub(/^@!?U?P[0-9T]+ +/, "", line)
    split(line, f, /[ .;]/); op = f[1]; if (op == "") next
    if (op == "IMAD" && f[2] ~ /^(MOV|SHL|WIDE|IADD|HI|X)$/) op = op "." f[2]  # IMAD as a move, shift, address
    n[fn, op]++; tot[fn]++; ops[op] = 1
  }
  END {
    for (fn in tot) {
      printf "\n%s: %d instructions, %d HMMA, %.1f per HMMA\n", fn, tot[fn], n[fn, "HMMA"],
             n[fn, "HMMA"] ? tot[fn] / n[fn, "HMMA"] : 0
      line = ""
      for (op in ops) if (n[fn, op] > 0) line = line sprintf("%s %d\n", op, n[fn, op])
      printf "%s", line | "sort -k2,2nr | paste -sd\" \" -"; close("sort -k2,2nr | paste -sd\" \" -")
    }
  }'
