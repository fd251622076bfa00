"""`gptoss info --device cuda --parallel N`: the memory line counts the fp16 copies of q/k/v/o and the
unembedding that the batched CUDA decode engine makes at load from 8 sequences (memory_plan.h).

Oracle: the copy sizes computed here from config.json (2 bytes per weight plus one f32 scale per row,
the f16_rows layout of backend/cuda/moe_gemm.h)."""
import json

import pytest

from cli_util import ROOT, run

TINY = ROOT / "tests" / "data" / "tiny" / "model"


def copies_from_config(config):
    h, d = config["hidden_size"], config["head_dim"]
    q, kv = config["num_attention_heads"] * d, config["num_key_value_heads"] * d

    def copy(rows, cols):
        return rows * cols * 2 + rows * 4

    layer = copy(q, h) + 2 * copy(kv, h) + copy(h, q)
    return config["num_hidden_layers"] * layer + copy(config["vocab_size"], h)


def memory(gptoss_bin, *args):
    r = run(gptoss_bin, "info", TINY, "--json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["memory"]


def test_cuda_plan_counts_the_decode_copies_from_8_sequences(gptoss_bin):
    config = json.loads((TINY / "config.json").read_text())
    want = copies_from_config(config)
    m8 = memory(gptoss_bin, "--device", "cuda", "--parallel", "8", "--ctx", "256")
    assert m8["device"] == "cuda" and m8["decode_copies_bytes"] == want > 0
    assert m8["total_bytes"] == m8["weights_bytes"] + m8["kv_cache_bytes"] + want
    m7 = memory(gptoss_bin, "--device", "cuda", "--parallel", "7", "--ctx", "256")
    assert m7["decode_copies_bytes"] == 0
    assert m7["total_bytes"] == m7["weights_bytes"] + m7["kv_cache_bytes"]
    for device in ("cpu", "cpu-fast"):
        m = memory(gptoss_bin, "--device", device, "--parallel", "64")
        assert m["device"] == device and m["decode_copies_bytes"] == 0
    r = run(gptoss_bin, "info", TINY, "--device", "cuda", "--parallel", "8")
    line = next(l for l in r.stdout.splitlines() if l.startswith("memory:"))
    assert "cuda decode fp16 weight copies" in line, line


def test_unknown_device_is_refused(gptoss_bin):
    r = run(gptoss_bin, "info", TINY, "--device", "tpu")
    assert r.returncode == 2 and "--device: unknown device 'tpu'" in r.stderr
