#!/usr/bin/env bash
# On the GPU machine: the load-time memory check on cuda (engine/memory_plan.h: the KV cache, activations and the
# weights against the GPU's free memory). engine_graph_decode_test (every test, GraphDecodeMemory among them), then
# `gptoss serve` on the tiny model asked for far more than the GPU holds: it must exit with the refusal, before
# listening. $S/bin (STAGE_DIR, default .gpu-M): engine_graph_decode_test, gptoss.
. "$(dirname "$0")/env.sh" .gpu-M
date -u
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader
head -1 "$S/COMMIT"
timeout 180 "$B/engine_graph_decode_test" 2>&1 | grep -E "^\[ +(OK|PASSED|FAILED|SKIPPED) |Failure|Expected|Which|message" || status=1
echo "== gptoss serve, tiny model, --ctx 131072 --max-running 8192 on cuda"
timeout 60 "$B/gptoss" serve tests/data/tiny/model --device cuda --ctx 131072 --max-running 8192 --port 18555
rc=$?
echo "exit status $rc"
[ $rc -ne 0 ] && [ $rc -ne 124 ] || status=1
exit $status
