"""Shared helpers for the loader tests: tiny gpt-oss checkpoints written with the `safetensors`
package (the oracle for the container format) in the HF and original layouts."""
import json
import os
import sys

import numpy as np
import safetensors

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
from make_random_checkpoint import original_config  # noqa: E402  (original/config.json: one writer for tools and tests)

DTYPE_NAMES = {"BF16": "bfloat16", "F32": "float32", "U8": "uint8", "F16": "float16"}
DTYPE_SIZES = {"BF16": 2, "F32": 4, "U8": 1, "F16": 2}


def bf16_bits(x):
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)


def serialize_file(tensors, path, metadata=None):
    """tensors: {name: (dtype, shape, numpy array of the raw little-endian bytes)}."""
    keep = {}
    specs = {}
    for name, (dtype, shape, arr) in tensors.items():
        arr = np.ascontiguousarray(arr)
        keep[name] = arr
        if hasattr(safetensors, "TensorSpec"):
            specs[name] = safetensors.TensorSpec(
                dtype=DTYPE_NAMES[dtype], shape=list(shape), data_ptr=arr.ctypes.data, data_len=arr.nbytes)
        else:  # safetensors < 0.8: dict specs with the bytes
            specs[name] = {"dtype": DTYPE_NAMES[dtype], "shape": list(shape), "data": arr.tobytes()}
    safetensors.serialize_file(specs, str(path), metadata=metadata or {"format": "pt"})
    del keep


def tiny_config(layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16, experts=4, top_k=2,
                intermediate=32, vocab=96, window=8):
    return dict(layers=layers, hidden=hidden, heads=heads, kv_heads=kv_heads, head_dim=head_dim,
                experts=experts, top_k=top_k, intermediate=intermediate, vocab=vocab, window=window)


def hf_config_json(c, rope_key="rope_scaling", **extra):
    rope = {"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
            "original_max_position_embeddings": 4096, "truncate": False}
    j = {
        "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "attention_bias": True,
        "num_hidden_layers": c["layers"], "hidden_size": c["hidden"],
        "num_attention_heads": c["heads"], "num_key_value_heads": c["kv_heads"],
        "head_dim": c["head_dim"], "num_local_experts": c["experts"],
        "num_experts_per_tok": c["top_k"], "experts_per_token": c["top_k"],
        "intermediate_size": c["intermediate"], "vocab_size": c["vocab"],
        "sliding_window": c["window"], "max_position_embeddings": 131072,
        "layer_types": ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(c["layers"])],
        "rms_norm_eps": 1e-05, "swiglu_limit": 7.0, "eos_token_id": c["vocab"] - 2,
        "pad_token_id": c["vocab"] - 1, "tie_word_embeddings": False,
        "quantization_config": {"quant_method": "mxfp4"},
    }
    if rope_key == "rope_parameters":
        rope["rope_theta"] = 150000.0
        j["rope_parameters"] = rope
    else:
        j["rope_scaling"] = rope
        j["rope_theta"] = 150000
    j.update(extra)
    return j


def tensor_specs(c, layout="hf", dense="BF16"):
    """(name, dtype, shape) of every tensor, transcribed from the reference's tensor tables."""
    V, H, E, I = c["vocab"], c["hidden"], c["experts"], c["intermediate"]
    Q, KV = c["heads"] * c["head_dim"], c["kv_heads"] * c["head_dim"]
    d = dense
    out = []
    if layout == "hf":
        out.append(("model.embed_tokens.weight", d, [V, H]))
        for n in range(c["layers"]):
            p = f"model.layers.{n}."
            out += [(p + "input_layernorm.weight", d, [H]),
                    (p + "self_attn.q_proj.weight", d, [Q, H]), (p + "self_attn.q_proj.bias", d, [Q]),
                    (p + "self_attn.k_proj.weight", d, [KV, H]), (p + "self_attn.k_proj.bias", d, [KV]),
                    (p + "self_attn.v_proj.weight", d, [KV, H]), (p + "self_attn.v_proj.bias", d, [KV]),
                    (p + "self_attn.o_proj.weight", d, [H, Q]), (p + "self_attn.o_proj.bias", d, [H]),
                    (p + "self_attn.sinks", d, [c["heads"]]),
                    (p + "post_attention_layernorm.weight", d, [H]),
                    (p + "mlp.router.weight", d, [E, H]), (p + "mlp.router.bias", d, [E]),
                    (p + "mlp.experts.gate_up_proj_blocks", "U8", [E, 2 * I, H // 32, 16]),
                    (p + "mlp.experts.gate_up_proj_scales", "U8", [E, 2 * I, H // 32]),
                    (p + "mlp.experts.gate_up_proj_bias", d, [E, 2 * I]),
                    (p + "mlp.experts.down_proj_blocks", "U8", [E, H, I // 32, 16]),
                    (p + "mlp.experts.down_proj_scales", "U8", [E, H, I // 32]),
                    (p + "mlp.experts.down_proj_bias", d, [E, H])]
        out += [("model.norm.weight", d, [H]), ("lm_head.weight", d, [V, H])]
    else:
        out.append(("embedding.weight", d, [V, H]))
        for n in range(c["layers"]):
            p = f"block.{n}."
            out += [(p + "attn.norm.scale", d, [H]),
                    (p + "attn.qkv.weight", d, [Q + 2 * KV, H]), (p + "attn.qkv.bias", d, [Q + 2 * KV]),
                    (p + "attn.sinks", d, [c["heads"]]),
                    (p + "attn.out.weight", d, [H, Q]), (p + "attn.out.bias", d, [H]),
                    (p + "mlp.norm.scale", d, [H]),
                    (p + "mlp.gate.weight", d, [E, H]), (p + "mlp.gate.bias", d, [E]),
                    (p + "mlp.mlp1_weight.blocks", "U8", [E, 2 * I, H // 32, 16]),
                    (p + "mlp.mlp1_weight.scales", "U8", [E, 2 * I, H // 32]),
                    (p + "mlp.mlp1_bias", d, [E, 2 * I]),
                    (p + "mlp.mlp2_weight.blocks", "U8", [E, H, I // 32, 16]),
                    (p + "mlp.mlp2_weight.scales", "U8", [E, H, I // 32]),
                    (p + "mlp.mlp2_bias", d, [E, H])]
        out += [("norm.scale", d, [H]), ("unembedding.weight", d, [V, H])]
    return out


def random_tensors(specs, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for name, dtype, shape in specs:
        n = int(np.prod(shape)) if shape else 1
        if dtype == "U8":
            lo, hi = (118, 125) if name.endswith("scales") else (0, 256)
            arr = rng.integers(lo, hi, size=n, dtype=np.uint8)
        elif dtype == "BF16":
            arr = bf16_bits(rng.standard_normal(n).astype(np.float32) * 0.02)
        elif dtype == "F32":
            arr = (rng.standard_normal(n) * 0.02).astype(np.float32)
        else:
            raise ValueError(dtype)
        out[name] = (dtype, shape, arr)
    return out


def write_hf(model_dir, c, shards=1, rope_key="rope_scaling", dense="BF16", seed=0, generation=True):
    """HF layout: config.json, generation_config.json, model.safetensors or shards + index."""
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(hf_config_json(c, rope_key), f, indent=2)
    if generation:
        with open(os.path.join(model_dir, "generation_config.json"), "w") as f:
            json.dump({"bos_token_id": 1, "eos_token_id": [c["vocab"] - 2, c["vocab"] - 1, 3]}, f)
    tensors = random_tensors(tensor_specs(c, "hf", dense), seed)
    names = list(tensors)
    if shards == 1:
        serialize_file(tensors, os.path.join(model_dir, "model.safetensors"))
        return tensors
    weight_map = {}
    per = (len(names) + shards - 1) // shards
    for s in range(shards):
        fname = f"model-{s:05d}-of-{shards - 1:05d}.safetensors"  # the hub's off-by-one naming
        part = {n: tensors[n] for n in names[s * per:(s + 1) * per]}
        serialize_file(part, os.path.join(model_dir, fname))
        weight_map.update({n: fname for n in part})
    total = sum(arr.nbytes for _, _, arr in tensors.values())
    with open(os.path.join(model_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return tensors


def write_original(orig_dir, c, seed=0):
    os.makedirs(orig_dir, exist_ok=True)
    with open(os.path.join(orig_dir, "config.json"), "w") as f:
        json.dump(original_config(c), f)
    tensors = random_tensors(tensor_specs(c, "original"), seed)
    serialize_file(tensors, os.path.join(orig_dir, "model.safetensors"))
    return tensors


def expected_summary(tensors, c, layout="hf"):
    """Bytes by kind and parameter counts, computed from the tensors we wrote."""
    b = {"bf16": 0, "f32": 0, "mxfp4_blocks": 0, "mxfp4_scales": 0, "other": 0}
    params = expert = unemb = 0
    for name, (dtype, shape, arr) in tensors.items():
        n = int(np.prod(shape)) if shape else 1
        if dtype == "U8" and name.endswith("blocks"):
            b["mxfp4_blocks"] += arr.nbytes
            p = 2 * n
        elif dtype == "U8" and name.endswith("scales"):
            b["mxfp4_scales"] += arr.nbytes
            p = 0
        elif dtype == "BF16":
            b["bf16"] += arr.nbytes
            p = n
        elif dtype == "F32":
            b["f32"] += arr.nbytes
            p = n
        else:
            b["other"] += arr.nbytes
            p = n
        params += p
        if ".mlp.experts." in name or ".mlp.mlp1_" in name or ".mlp.mlp2_" in name:
            expert += p
        if name in ("lm_head.weight", "unembedding.weight"):
            unemb += p
    b["total"] = sum(b.values())
    active = params - unemb - expert * (c["experts"] - c["top_k"]) // c["experts"]
    return b, params, active
