"""tools/make_random_checkpoint.py: the plan for the real 20b/120b shapes equals the Hub's
published totals, and a tiny checkpoint it writes is read back identically by the `safetensors`
package and by `gptoss info`, in both layouts, holding the same weights."""
import json
import os
import subprocess
import sys

import numpy as np
import safetensors

from loader_util import expected_summary, tensor_specs, tiny_config

TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "make-random-checkpoint")


def run_tool(*args):
    r = subprocess.run([sys.executable, TOOL, "--quiet", *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def read_dir(d):
    """{name: (dtype, shape, bytes, file)} for every .safetensors in d, parsed by safetensors."""
    out = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            for name, t in safetensors.deserialize(open(os.path.join(d, f), "rb").read()):
                assert name not in out
                out[name] = (t["dtype"], list(t["shape"]), bytes(t["data"]), f)
    return out


def bf16_to_f32(b):
    return (np.frombuffer(b, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)



def test_plan_matches_hub_totals():
    j = json.loads(run_tool("--preset", "20b", "--dry-run"))
    assert j["tensors"] == 459 and j["total_size"] == 13_761_264_768
    assert sorted(j["files"]) == [f"model-0000{i}-of-00002.safetensors" for i in range(3)]
    assert all(n <= 5e9 for n in j["files"].values())
    j = json.loads(run_tool("--preset", "120b", "--dry-run"))
    assert j["tensors"] == 687 and j["total_size"] == 65_248_815_744
    assert len(j["files"]) == 15 and "model-00014-of-00014.safetensors" in j["files"]


def test_tiny_checkpoint_round_trip(gptoss_bin, tmp_path):
    out = tmp_path / "m"
    run_tool("--preset", "tiny", "--out", str(out), "--max-shard-bytes", "40000", "--original", "--seed", "3")
    c = tiny_config(layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16, experts=4, top_k=2,
                    intermediate=32, vocab=256, window=8)
    hf = read_dir(out)
    # Names, dtypes and shapes are the reference's tensor table (transcribed independently here).
    assert {n: (d, s) for n, (d, s, _, _) in hf.items()} == {n: (d, s) for n, d, s in tensor_specs(c, "hf")}
    index = json.load(open(out / "model.safetensors.index.json"))
    assert {n: f for n, (_, _, _, f) in hf.items()} == index["weight_map"]
    assert index["metadata"]["total_size"] == sum(len(b) for _, _, b, _ in hf.values())
    assert len(set(index["weight_map"].values())) == 4
    assert all(f.endswith("-of-00003.safetensors") for f in index["weight_map"].values())
    # Value ranges: scales within 118..124, norm gains near 1, projections near N(0, 0.02).
    scales = np.frombuffer(hf["model.layers.0.mlp.experts.down_proj_scales"][2], dtype=np.uint8)
    assert scales.min() >= 118 and scales.max() <= 124 and len(set(scales.tolist())) > 3
    gain = bf16_to_f32(hf["model.layers.1.input_layernorm.weight"][2])
    assert abs(gain.mean() - 1.0) < 0.05
    w = bf16_to_f32(hf["lm_head.weight"][2])
    assert 0.015 < w.std() < 0.025 and np.isfinite(w).all()

    tensors = {n: (d, s, np.frombuffer(b, dtype=np.uint8)) for n, (d, s, b, _) in hf.items()}
    j = json.loads(subprocess.run([gptoss_bin, "info", str(out), "--json"], capture_output=True,
                                  text=True, check=True).stdout)
    b, params, active = expected_summary(tensors, c)
    assert j["layout"] == "hf" and j["tensor_count"] == 41
    assert j["bytes"] == b and j["parameters"] == params and j["active_parameters"] == active
    assert j["config"]["num_experts"] == 4 and j["config"]["experts_per_token"] == 2
    assert j["config"]["eos_token_ids"] == [255, 254]

    # original/ holds the same weights: qkv is the row concatenation of q, k, v.
    orig = read_dir(out / "original")
    assert {n: (d, s) for n, (d, s, _, _) in orig.items()} == {n: (d, s) for n, d, s in tensor_specs(c, "original")}
    for layer in range(2):
        p, o = f"model.layers.{layer}.", f"block.{layer}."
        for kind in ("weight", "bias"):
            assert orig[o + f"attn.qkv.{kind}"][2] == b"".join(hf[p + f"self_attn.{x}_proj.{kind}"][2] for x in "qkv")
        assert orig[o + "mlp.mlp1_weight.blocks"][2] == hf[p + "mlp.experts.gate_up_proj_blocks"][2]
        assert orig[o + "mlp.mlp2_weight.scales"][2] == hf[p + "mlp.experts.down_proj_scales"][2]
        assert orig[o + "attn.sinks"][2] == hf[p + "self_attn.sinks"][2]
    assert orig["unembedding.weight"][2] == hf["lm_head.weight"][2]
    jo = json.loads(subprocess.run([gptoss_bin, "info", str(out / "original"), "--json"], capture_output=True,
                                   text=True, check=True).stdout)
    assert jo["layout"] == "original" and jo["parameters"] == params and jo["bytes"] == b


def test_seed_and_rope_key(gptoss_bin, tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    run_tool("--preset", "tiny", "--out", str(a), "--single-file")
    run_tool("--preset", "tiny", "--out", str(b), "--single-file")
    run_tool("--preset", "tiny", "--out", str(c), "--single-file", "--seed", "1", "--rope-key", "rope_parameters",
             "--layers", "4", "--experts", "8")
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert not (a / "model.safetensors.index.json").exists()
    cfg = json.load(open(c / "config.json"))
    assert "rope_parameters" in cfg and "rope_scaling" not in cfg and cfg["rope_parameters"]["rope_theta"] == 150000.0
    j = json.loads(subprocess.run([gptoss_bin, "info", str(c), "--json"], capture_output=True, text=True,
                                  check=True).stdout)
    assert j["config"]["num_layers"] == 4 and j["config"]["num_experts"] == 8
    assert j["config"]["rope_theta"] == 150000.0 and j["config"]["rope_scaling_factor"] == 32.0
    ha, hc = read_dir(a), read_dir(c)
    assert ha["model.embed_tokens.weight"][2] != hc["model.embed_tokens.weight"][2]
