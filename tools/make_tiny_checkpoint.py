#!/usr/bin/env python3
"""Write a small random gpt-oss checkpoint in the exact on-disk layout of the Hub files.

HF layout (the repository root of openai/gpt-oss-*): config.json (yarn rope parameters, mxfp4
quantization_config), generation_config.json, model.safetensors or model-0000k-of-0000n.safetensors
shards with model.safetensors.index.json; experts as MXFP4 `_blocks` [E, rows, cols/32, 16] and
`_scales` [E, rows, cols/32] (U8), everything else BF16.
original/ layout (OpenAI reference): original/config.json, original/model.safetensors with the fused
qkv projection and the `block.N.*` names, same bytes otherwise.

Only numpy is needed (the safetensors container is written here, BF16 included). The same seed gives
the same bytes. Example:
    tools/make_tiny_checkpoint.py --out /tmp/tiny --shards 3 --original
"""
import argparse
import json
import math
import os
import struct

import numpy as np

def f32_to_bf16_bits(x):
    """Round-to-nearest-even float32 -> bfloat16 bit patterns (uint16)."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    return b.astype(np.uint16)


def bf16_bits_to_f32(bits):
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


class Tensor:
    """A tensor to write: raw little-endian bytes plus its safetensors dtype and shape."""

    def __init__(self, dtype, shape, data):
        self.dtype = dtype
        self.shape = list(shape)
        self.data = np.ascontiguousarray(data).tobytes()


def bf16(x):
    return Tensor("BF16", x.shape, f32_to_bf16_bits(x))


def u8(x):
    return Tensor("U8", x.shape, x.astype(np.uint8))


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, Tensor) in file order."""
    header = {}
    offset = 0
    for name, t in tensors:
        header[name] = {"dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, offset + len(t.data)]}
        offset += len(t.data)
    header["__metadata__"] = metadata or {"format": "pt"}
    hjson = json.dumps(header, separators=(",", ":")).encode()
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for _, t in tensors:
            f.write(t.data)


def read_safetensors(path):
    """Returns {name: (dtype, shape, bytes)} in file order."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        out[name] = (info["dtype"], info["shape"], body[b:e])
    return out


def quantize_mxfp4(rng, experts, rows, cols, scale_lo, scale_hi):
    """Random MXFP4 codes and E8M0 scales: blocks [E, rows, cols/32, 16], scales [E, rows, cols/32]."""
    assert cols % 32 == 0
    nb = cols // 32
    codes = rng.integers(0, 16, size=(experts, rows, nb, 32), dtype=np.uint8)
    blocks = (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)
    scales = rng.integers(scale_lo, scale_hi + 1, size=(experts, rows, nb), dtype=np.uint8)
    return blocks, scales


FP4_VALUES = np.array([+0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0,
                       -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0], dtype=np.float32)


def dequantize_mxfp4(blocks, scales):
    """[..., nb, 16] codes + [..., nb] scales -> [..., nb*32] float32 (low nibble = even element)."""
    lo = FP4_VALUES[blocks & 0x0F]
    hi = FP4_VALUES[blocks >> 4]
    vals = np.stack([lo, hi], axis=-1).reshape(*blocks.shape[:-1], 32)
    vals = vals * np.ldexp(np.float32(1.0), scales.astype(np.int32) - 127)[..., None]
    return vals.reshape(*blocks.shape[:-2], blocks.shape[-2] * 32).astype(np.float32)


def make_weights(a):
    """Returns an ordered list of (hf_name, Tensor). Scales keep activations O(1)."""
    rng = np.random.default_rng(a.seed)
    H, D, NQ, NKV, E, I, V = a.hidden, a.head_dim, a.heads, a.kv_heads, a.experts, a.intermediate, a.vocab

    def normal(shape, std):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    out = [("model.embed_tokens.weight", bf16(normal((V, H), 1.0)))]
    for l in range(a.layers):
        p = f"model.layers.{l}."
        out += [
            (p + "input_layernorm.weight", bf16(1.0 + normal((H,), 0.2))),
            (p + "self_attn.q_proj.weight", bf16(normal((NQ * D, H), 1.0 / math.sqrt(H)))),
            (p + "self_attn.q_proj.bias", bf16(normal((NQ * D,), 0.2))),
            (p + "self_attn.k_proj.weight", bf16(normal((NKV * D, H), 1.0 / math.sqrt(H)))),
            (p + "self_attn.k_proj.bias", bf16(normal((NKV * D,), 0.2))),
            (p + "self_attn.v_proj.weight", bf16(normal((NKV * D, H), 1.0 / math.sqrt(H)))),
            (p + "self_attn.v_proj.bias", bf16(normal((NKV * D,), 0.2))),
            (p + "self_attn.o_proj.weight", bf16(normal((H, NQ * D), 1.0 / math.sqrt(NQ * D)))),
            (p + "self_attn.o_proj.bias", bf16(normal((H,), 0.2))),
            (p + "self_attn.sinks", bf16(normal((NQ,), 1.0))),
            (p + "post_attention_layernorm.weight", bf16(1.0 + normal((H,), 0.2))),
            (p + "mlp.router.weight", bf16(normal((E, H), 2.0 / math.sqrt(H)))),
            (p + "mlp.router.bias", bf16(normal((E,), 0.5))),
        ]
        # Scale exponents: values of |w| up to 6*2^(s-127); a dot over `cols` O(1) inputs with
        # s ~ 127 - log2(8*sqrt(cols)) lands O(1), with some rows larger so the SwiGLU clamp is hit.
        s1 = 127 - int(round(math.log2(8 * math.sqrt(H))))
        blocks, scales = quantize_mxfp4(rng, E, 2 * I, H, s1 - 1, s1 + 2)
        out += [
            (p + "mlp.experts.gate_up_proj_blocks", u8(blocks)),
            (p + "mlp.experts.gate_up_proj_scales", u8(scales)),
            (p + "mlp.experts.gate_up_proj_bias", bf16(normal((E, 2 * I), 3.0))),
        ]
        s2 = 127 - int(round(math.log2(8 * math.sqrt(I)))) - 1
        blocks, scales = quantize_mxfp4(rng, E, H, I, s2 - 1, s2 + 1)
        out += [
            (p + "mlp.experts.down_proj_blocks", u8(blocks)),
            (p + "mlp.experts.down_proj_scales", u8(scales)),
            (p + "mlp.experts.down_proj_bias", bf16(normal((E, H), 0.2))),
        ]
    out += [
        ("model.norm.weight", bf16(1.0 + normal((H,), 0.2))),
        ("lm_head.weight", bf16(normal((V, H), 2.0 / math.sqrt(H)))),
    ]
    return out


def special_ids(vocab):
    """bos, pad, eos list: the real ids when they fit, else the last rows (transformers needs pad < vocab)."""
    if vocab > 200012:
        return 199998, 199999, [200002, 199999, 200012]
    return vocab - 4, vocab - 1, [vocab - 2, vocab - 1, vocab - 3]


def hf_config(a, rope_key):
    _, pad, eos = special_ids(a.vocab)
    rope = {"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
            "original_max_position_embeddings": 4096, "truncate": a.rope_truncate}
    cfg = {
        "architectures": ["GptOssForCausalLM"],
        "attention_bias": True,
        "attention_dropout": 0.0,
        "eos_token_id": eos[0],
        "experts_per_token": a.top_k,
        "head_dim": a.head_dim,
        "hidden_act": "silu",
        "hidden_size": a.hidden,
        "initial_context_length": 4096,
        "initializer_range": 0.02,
        "intermediate_size": a.intermediate,
        "layer_types": ["sliding_attention" if l % 2 == 0 else "full_attention" for l in range(a.layers)],
        "max_position_embeddings": 131072,
        "model_type": "gpt_oss",
        "num_attention_heads": a.heads,
        "num_experts_per_tok": a.top_k,
        "num_hidden_layers": a.layers,
        "num_key_value_heads": a.kv_heads,
        "num_local_experts": a.experts,
        "output_router_logits": False,
        "pad_token_id": pad,
        "quantization_config": {
            "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                       "model.embed_tokens", "lm_head"],
            "quant_method": "mxfp4",
        },
        "rms_norm_eps": 1e-05,
        "router_aux_loss_coef": 0.9,
        "sliding_window": a.window,
        "swiglu_limit": 7.0,
        "tie_word_embeddings": False,
        "transformers_version": "4.55.0.dev0",
        "use_cache": True,
        "vocab_size": a.vocab,
    }
    if rope_key == "rope_parameters":
        cfg["rope_parameters"] = dict(rope, rope_theta=150000.0)
    else:
        cfg["rope_scaling"] = rope
        cfg["rope_theta"] = 150000
    return cfg


def generation_config(vocab):
    bos, pad, eos = special_ids(vocab)
    return {"bos_token_id": bos, "do_sample": True, "eos_token_id": eos, "pad_token_id": pad,
            "transformers_version": "4.55.0.dev0"}


def write_hf(out, a, weights):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(hf_config(a, a.rope_key), f, indent=2)
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump(generation_config(a.vocab), f, indent=2)
    if a.shards <= 1:
        write_safetensors(os.path.join(out, "model.safetensors"), weights)
        return
    # Hub naming quirk: n files are numbered 00000..n-1 and say "-of-{n-1}".
    per = math.ceil(len(weights) / a.shards)
    weight_map, total = {}, 0
    for k in range(a.shards):
        part = weights[k * per:(k + 1) * per]
        fname = f"model-{k:05d}-of-{a.shards - 1:05d}.safetensors"
        write_safetensors(os.path.join(out, fname), part)
        for name, t in part:
            weight_map[name] = fname
            total += len(t.data)
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)


HF_TO_ORIGINAL = {
    "input_layernorm.weight": "attn.norm.scale",
    "self_attn.sinks": "attn.sinks",
    "self_attn.o_proj.weight": "attn.out.weight",
    "self_attn.o_proj.bias": "attn.out.bias",
    "post_attention_layernorm.weight": "mlp.norm.scale",
    "mlp.router.weight": "mlp.gate.weight",
    "mlp.router.bias": "mlp.gate.bias",
    "mlp.experts.gate_up_proj_blocks": "mlp.mlp1_weight.blocks",
    "mlp.experts.gate_up_proj_scales": "mlp.mlp1_weight.scales",
    "mlp.experts.gate_up_proj_bias": "mlp.mlp1_bias",
    "mlp.experts.down_proj_blocks": "mlp.mlp2_weight.blocks",
    "mlp.experts.down_proj_scales": "mlp.mlp2_weight.scales",
    "mlp.experts.down_proj_bias": "mlp.mlp2_bias",
}


def original_from_hf(hf_dir, out_dir):
    """Writes out_dir/config.json + model.safetensors (original layout) from an HF-layout directory."""
    with open(os.path.join(hf_dir, "config.json")) as f:
        cfg = json.load(f)
    tensors = {}
    index = os.path.join(hf_dir, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) \
        else ["model.safetensors"]
    for fn in files:
        tensors.update(read_safetensors(os.path.join(hf_dir, fn)))
    rope = cfg.get("rope_scaling") or cfg.get("rope_parameters")
    theta = cfg.get("rope_theta", rope.get("rope_theta"))
    ocfg = {
        "num_hidden_layers": cfg["num_hidden_layers"], "num_experts": cfg["num_local_experts"],
        "experts_per_token": cfg["num_experts_per_tok"], "vocab_size": cfg["vocab_size"],
        "hidden_size": cfg["hidden_size"], "intermediate_size": cfg["intermediate_size"],
        "swiglu_limit": cfg["swiglu_limit"], "head_dim": cfg["head_dim"],
        "num_attention_heads": cfg["num_attention_heads"], "num_key_value_heads": cfg["num_key_value_heads"],
        "sliding_window": cfg["sliding_window"], "initial_context_length": rope["original_max_position_embeddings"],
        "rope_theta": theta, "rope_scaling_factor": rope["factor"],
        "rope_ntk_alpha": rope["beta_slow"], "rope_ntk_beta": rope["beta_fast"],
    }
    def raw(name):
        dt, shape, data = tensors[name]
        t = Tensor(dt, shape, np.zeros(0, np.uint8))
        t.data = data
        return t

    out = [("embedding.weight", raw("model.embed_tokens.weight"))]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        q = f"block.{l}."
        out.append((q + "attn.norm.scale", raw(p + "input_layernorm.weight")))
        for kind in ("weight", "bias"):
            parts = [tensors[p + f"self_attn.{x}_proj.{kind}"] for x in "qkv"]
            shape = [sum(s[1][0] for s in parts)] + parts[0][1][1:]
            t = Tensor("BF16", shape, np.zeros(0, np.uint8))
            t.data = b"".join(s[2] for s in parts)
            out.append((q + f"attn.qkv.{kind}", t))
        for hf, orig in HF_TO_ORIGINAL.items():
            if hf == "input_layernorm.weight":
                continue
            out.append((q + orig, raw(p + hf)))
    out += [("norm.scale", raw("model.norm.weight")), ("unembedding.weight", raw("lm_head.weight"))]
    dtypes = {}
    for name, t in out:
        dtypes[name] = {"U8": "FP4" if name.endswith(".blocks") else "UE8"}.get(t.dtype, t.dtype)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(ocfg, f, indent=2)
    with open(os.path.join(out_dir, "dtypes.json"), "w") as f:
        json.dump(dtypes, f, indent=2)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="model directory to create")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--top-k", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=512, help="201088 for the real vocabulary")
    ap.add_argument("--window", type=int, default=8, help="sliding window (128 in the real models)")
    ap.add_argument("--shards", type=int, default=1, help=">1: shards + model.safetensors.index.json")
    ap.add_argument("--rope-key", choices=["rope_scaling", "rope_parameters"], default="rope_scaling")
    ap.add_argument("--rope-truncate", action="store_true",
                    help="yarn truncate=true (the Hub models use false: fractional correction range)")
    ap.add_argument("--original", action="store_true", help="also write original/ (OpenAI layout)")
    a = ap.parse_args()
    if a.hidden % 32 or a.intermediate % 32:
        ap.error("--hidden and --intermediate must be multiples of 32 (MXFP4 blocks)")
    weights = make_weights(a)
    write_hf(a.out, a, weights)
    if a.original:
        original_from_hf(a.out, os.path.join(a.out, "original"))


if __name__ == "__main__":
    main()
