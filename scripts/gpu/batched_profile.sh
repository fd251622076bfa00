#!/usr/bin/env bash
# On the GPU machine (NOTES v39): where a batched decode step's time goes. The lab's engines at 16 and 64 sequences
# (graph + PDL, random 20b weights made on the device), then ncu on two steps' kernels of each (one row per kernel:
# duration, DRAM bytes, grid, registers, SM throughput), aggregated by bench/kernels/cuda/ncu_steps.py. Also the tiny
# 128-expert checkpoint (tests/data/tiny_e128) on the GPU: the graph decode check at batch 1..64 and `gptoss logits
# --device cuda` against the exact CPU path. $S/bin: gptoss_cuda_lab, gptoss_cuda_decode_check, gptoss.
. "$(dirname "$0")/env.sh" .gpu-P
O=${OUT:-/tmp/prof}
mkdir -p "$O"
date -u
nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv,noheader
echo "== tiny_e128 on the GPU"
T=tests/data/tiny_e128
"$B/gptoss_cuda_decode_check" $T/model --tokens 358,318,174,506,238,110,432 --tol 1e-4 --batch 1,8,16,64 --seqs 8 \
  2>&1 | tail -6 || status=1
"$B/gptoss" logits $T/model --tokens-file $T/prompts.json --out "$O/e128_cuda.safetensors" --device cuda || status=1
"$B/gptoss" logits $T/model --tokens-file $T/prompts.json --out "$O/e128_cuda1.safetensors" --device cuda --step 1 || status=1
"$B/gptoss" logits $T/model --tokens-file $T/prompts.json --out "$O/e128_cpu.safetensors" --device cpu || status=1
python3 scripts/gpu/r120_logits.py "$O/e128_cpu.safetensors" "$O/e128_cuda.safetensors" "$O/e128_cuda1.safetensors" || status=1
echo "== lab batched, default engine, 1 / 16 / 64 sequences $(date -u +%T)"
LAB_ENGINES=5 LAB_BATCHES="1 16 64" timeout 200 "$B/gptoss_cuda_lab" batched 2 2>&1 | grep -E "copy|default" || status=1
for n in 64 16; do
  echo "== ncu, $n sequences $(date -u +%T)"
  # Launches: creation and the warm-up come first; skip past them into the timed graph replays.
  LAB_ENGINES=5 LAB_BATCHES=$n timeout 400 ncu --csv --page raw --launch-skip ${SKIP:-1500} --launch-count ${COUNT:-900} \
    --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,launch__grid_size,launch__block_size,launch__registers_per_thread,sm__throughput.avg.pct_of_peak_sustained_elapsed,sm__warps_active.avg.pct_of_peak_sustained_active \
    "$B/gptoss_cuda_lab" batched 1 > "$O/ncu_$n.csv" 2> "$O/ncu_$n.err" || { status=1; tail -5 "$O/ncu_$n.err"; }
  python3 bench/kernels/cuda/ncu_steps.py "$O/ncu_$n.csv" || status=1
done
date -u
exit $status
