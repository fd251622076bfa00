#!/usr/bin/env python3
"""Write a random gpt-oss checkpoint in the exact on-disk layout of the Hub files, at any size up
to the real 20b/120b shapes, streaming (memory stays under ~200 MB whatever the size).

HF layout (root of openai/gpt-oss-*): config.json (rope_scaling spelling by default, mxfp4
quantization_config), generation_config.json, model-0000k-of-0000n.safetensors shards (the Hub's
off-by-one naming: 3 files are "-of-00002") with model.safetensors.index.json, or one
model.safetensors. Experts are MXFP4: `_blocks` [E, rows, cols/32, 16] random bytes and `_scales`
[E, rows, cols/32] in a sane E8M0 range (default 118..124, i.e. 2^-9..2^-3); everything else BF16
with realistic ranges (projections ~N(0, 0.02), norm gains ~1, small biases and sinks).
--original also writes original/ (OpenAI layout: fused qkv, block.N names) holding the very same
weights: every tensor is generated from (seed, its HF name), so both layouts are one model.

Only numpy is needed. Examples:
    tools/make_random_checkpoint.py --preset 20b --out /data/gpt-oss-20b-random
    tools/make_random_checkpoint.py --preset tiny --out /tmp/tiny --max-shard-bytes 100000 --original
    tools/make_random_checkpoint.py --preset 20b --dry-run      # print the plan, write nothing
"""
import argparse
import hashlib
import json
import os
import struct
import sys
import time

import numpy as np

from make_tiny_checkpoint import HF_TO_ORIGINAL  # HF -> original/ names, one table for both tools

PRESETS = {
    # The published shapes (reference §1.1).
    "20b": dict(layers=24, hidden=2880, heads=64, kv_heads=8, head_dim=64, experts=32, top_k=4,
                intermediate=2880, vocab=201088, window=128),
    "120b": dict(layers=36, hidden=2880, heads=64, kv_heads=8, head_dim=64, experts=128, top_k=4,
                 intermediate=2880, vocab=201088, window=128),
    # The real vocabulary on a small body: end-to-end runs with the real tokenizer (~0.2 GB).
    "small": dict(layers=4, hidden=256, heads=8, kv_heads=2, head_dim=64, experts=8, top_k=4,
                  intermediate=256, vocab=201088, window=128),
    # Unit-test size (~100 kB).
    "tiny": dict(layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16, experts=4, top_k=2,
                 intermediate=32, vocab=256, window=8),
}

CHUNK_ELEMS = 1 << 24  # generate at most 16M elements at a time


def hf_tensors(c):
    """(name, dtype, shape, kind) in the Hub's write order: layers first, then embed/norm/lm_head."""
    V, H, E, I = c["vocab"], c["hidden"], c["experts"], c["intermediate"]
    Q, KV = c["heads"] * c["head_dim"], c["kv_heads"] * c["head_dim"]
    out = []
    for n in range(c["layers"]):
        p = f"model.layers.{n}."
        out += [
            (p + "input_layernorm.weight", "BF16", [H], "gain"),
            (p + "self_attn.q_proj.weight", "BF16", [Q, H], "weight"),
            (p + "self_attn.q_proj.bias", "BF16", [Q], "bias"),
            (p + "self_attn.k_proj.weight", "BF16", [KV, H], "weight"),
            (p + "self_attn.k_proj.bias", "BF16", [KV], "bias"),
            (p + "self_attn.v_proj.weight", "BF16", [KV, H], "weight"),
            (p + "self_attn.v_proj.bias", "BF16", [KV], "bias"),
            (p + "self_attn.o_proj.weight", "BF16", [H, Q], "weight"),
            (p + "self_attn.o_proj.bias", "BF16", [H], "bias"),
            (p + "self_attn.sinks", "BF16", [c["heads"]], "sink"),
            (p + "post_attention_layernorm.weight", "BF16", [H], "gain"),
            (p + "mlp.router.weight", "BF16", [E, H], "weight"),
            (p + "mlp.router.bias", "BF16", [E], "bias"),
            (p + "mlp.experts.gate_up_proj_blocks", "U8", [E, 2 * I, H // 32, 16], "blocks"),
            (p + "mlp.experts.gate_up_proj_scales", "U8", [E, 2 * I, H // 32], "scales"),
            (p + "mlp.experts.gate_up_proj_bias", "BF16", [E, 2 * I], "bias"),
            (p + "mlp.experts.down_proj_blocks", "U8", [E, H, I // 32, 16], "blocks"),
            (p + "mlp.experts.down_proj_scales", "U8", [E, H, I // 32], "scales"),
            (p + "mlp.experts.down_proj_bias", "BF16", [E, H], "bias"),
        ]
    out += [("model.embed_tokens.weight", "BF16", [V, H], "weight"),
            ("model.norm.weight", "BF16", [H], "gain"),
            ("lm_head.weight", "BF16", [V, H], "weight")]
    return out


def original_tensors(c):
    """(name, dtype, shape, [HF source names]) for original/; qkv is the row concatenation q;k;v."""
    by_name = {t[0]: t for t in hf_tensors(c)}
    out = [("embedding.weight", "BF16", by_name["model.embed_tokens.weight"][2], ["model.embed_tokens.weight"])]
    for n in range(c["layers"]):
        p, o = f"model.layers.{n}.", f"block.{n}."
        for suffix, dst in [("input_layernorm.weight", "attn.norm.scale")]:
            out.append((o + dst, "BF16", by_name[p + suffix][2], [p + suffix]))
        for kind in ("weight", "bias"):
            srcs = [p + f"self_attn.{x}_proj.{kind}" for x in "qkv"]
            rows = sum(by_name[s][2][0] for s in srcs)
            out.append((o + f"attn.qkv.{kind}", "BF16", [rows] + by_name[srcs[0]][2][1:], srcs))
        for suffix in ["self_attn.sinks", "self_attn.o_proj.weight", "self_attn.o_proj.bias",
                       "post_attention_layernorm.weight", "mlp.router.weight", "mlp.router.bias",
                       "mlp.experts.gate_up_proj_blocks", "mlp.experts.gate_up_proj_scales",
                       "mlp.experts.gate_up_proj_bias", "mlp.experts.down_proj_blocks",
                       "mlp.experts.down_proj_scales", "mlp.experts.down_proj_bias"]:
            t = by_name[p + suffix]
            out.append((o + HF_TO_ORIGINAL[suffix], t[1], t[2], [p + suffix]))
    out += [("norm.scale", "BF16", by_name["model.norm.weight"][2], ["model.norm.weight"]),
            ("unembedding.weight", "BF16", by_name["lm_head.weight"][2], ["lm_head.weight"])]
    return out


def nbytes(dtype, shape):
    n = 2 if dtype == "BF16" else 1
    for d in shape:
        n *= d
    return n


def tensor_chunks(seed, name, dtype, shape, kind, scale_lo, scale_hi):
    """Yields the tensor's bytes in chunks; deterministic in (seed, name)."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    total = 1
    for d in shape:
        total *= d
    done = 0
    while done < total:
        n = min(CHUNK_ELEMS, total - done)
        if kind == "blocks":
            yield rng.bytes(n)
        elif kind == "scales":
            yield rng.integers(scale_lo, scale_hi + 1, size=n, dtype=np.uint8).tobytes()
        else:
            x = rng.standard_normal(n, dtype=np.float32)
            if kind == "weight":
                x *= 0.02
            elif kind == "bias":
                x *= 0.01
            elif kind == "gain":
                x = 1.0 + 0.05 * x
            elif kind == "sink":
                x *= 0.5
            # float32 -> bf16 bits, round to nearest even
            b = x.view(np.uint32)
            b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
            yield b.astype(np.uint16).tobytes()
        done += n


def header_bytes(entries):
    """entries: [(name, dtype, shape, nbytes)] in data order -> 8-byte length + padded JSON."""
    h = {"__metadata__": {"format": "pt"}}
    off = 0
    for name, dtype, shape, n in entries:
        h[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    text = json.dumps(h, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text


def plan_shards(tensors, max_shard_bytes):
    shards, cur, size = [], [], 0
    for t in tensors:
        n = nbytes(t[1], t[2])
        if cur and size + n > max_shard_bytes:
            shards.append(cur)
            cur, size = [], 0
        cur.append(t)
        size += n
    if cur:
        shards.append(cur)
    return shards


def hf_config(c, rope_key):
    rope = {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0,
            "original_max_position_embeddings": 4096, "rope_type": "yarn", "truncate": False}
    j = {
        "architectures": ["GptOssForCausalLM"], "attention_bias": True, "attention_dropout": 0.0,
        "eos_token_id": 200002 if c["vocab"] > 200012 else c["vocab"] - 1,
        "experts_per_token": c["top_k"], "head_dim": c["head_dim"], "hidden_act": "silu",
        "hidden_size": c["hidden"], "initial_context_length": 4096, "initializer_range": 0.02,
        "intermediate_size": c["intermediate"],
        "layer_types": ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(c["layers"])],
        "max_position_embeddings": 131072, "model_type": "gpt_oss",
        "num_attention_heads": c["heads"], "num_experts_per_tok": c["top_k"],
        "num_hidden_layers": c["layers"], "num_key_value_heads": c["kv_heads"],
        "num_local_experts": c["experts"], "output_router_logits": False,
        "pad_token_id": 199999 if c["vocab"] > 200012 else c["vocab"] - 2,
        "quantization_config": {
            "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                       "model.embed_tokens", "lm_head"],
            "quant_method": "mxfp4"},
        "rms_norm_eps": 1e-05, "router_aux_loss_coef": 0.9, "sliding_window": c["window"],
        "swiglu_limit": 7.0, "tie_word_embeddings": False, "transformers_version": "4.55.0.dev0",
        "use_cache": True, "vocab_size": c["vocab"],
    }
    if rope_key == "rope_parameters":
        rope["rope_theta"] = 150000.0
        j["rope_parameters"] = rope
    else:
        j["rope_scaling"] = rope
        j["rope_theta"] = 150000
    return j


def generation_config(c):
    if c["vocab"] > 200012:
        eos = [200002, 199999, 200012]
        return {"bos_token_id": 199998, "do_sample": True, "eos_token_id": eos, "pad_token_id": 199999,
                "transformers_version": "4.55.0.dev0"}
    v = c["vocab"]
    return {"bos_token_id": v - 3, "do_sample": True, "eos_token_id": [v - 1, v - 2],
            "pad_token_id": v - 2, "transformers_version": "4.55.0.dev0"}


def original_config(c):
    return {"num_hidden_layers": c["layers"], "num_experts": c["experts"], "experts_per_token": c["top_k"],
            "vocab_size": c["vocab"], "hidden_size": c["hidden"], "intermediate_size": c["intermediate"],
            "swiglu_limit": 7.0, "head_dim": c["head_dim"], "num_attention_heads": c["heads"],
            "num_key_value_heads": c["kv_heads"], "sliding_window": c["window"],
            "initial_context_length": 4096, "rope_theta": 150000, "rope_scaling_factor": 32.0,
            "rope_ntk_alpha": 1.0, "rope_ntk_beta": 32.0}


class Progress:
    def __init__(self, total, quiet):
        self.total, self.done, self.quiet, self.t0, self.last = total, 0, quiet, time.time(), 0.0

    def add(self, n):
        self.done += n
        now = time.time()
        if not self.quiet and (now - self.last > 2 or self.done == self.total):
            self.last = now
            rate = self.done / max(now - self.t0, 1e-9) / 1e6
            print(f"\r  {self.done / 1e9:7.2f} / {self.total / 1e9:.2f} GB  {rate:6.0f} MB/s",
                  end="", file=sys.stderr, flush=True)


def write_file(path, entries, sources, kinds, args, progress):
    """entries: [(name, dtype, shape, nbytes)]; sources[name] = HF names whose bytes form it."""
    tmp = path + ".partial"
    with open(tmp, "wb") as f:
        f.write(header_bytes(entries))
        for name, dtype, shape, _ in entries:
            for src in sources[name]:
                sdtype, sshape, kind = kinds[src]
                for chunk in tensor_chunks(args.seed, src, sdtype, sshape, kind, args.scale_min, args.scale_max):
                    f.write(chunk)
                    progress.add(len(chunk))
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--out", help="model directory to create (required unless --dry-run)")
    ap.add_argument("--seed", type=int, default=0)
    for k in ["layers", "experts", "top_k", "vocab", "hidden", "intermediate", "heads", "kv_heads",
              "head_dim", "window"]:
        ap.add_argument("--" + k.replace("_", "-"), type=int, help=f"override the preset's {k}")
    ap.add_argument("--max-shard-bytes", type=float, default=5e9,
                    help="split into index + shards above this many bytes (Hub files: 5 GB)")
    ap.add_argument("--single-file", action="store_true", help="one model.safetensors, no index")
    ap.add_argument("--rope-key", choices=["rope_scaling", "rope_parameters"], default="rope_scaling")
    ap.add_argument("--original", action="store_true", help="also write original/ with the same weights")
    ap.add_argument("--scale-min", type=int, default=118, help="smallest E8M0 scale byte")
    ap.add_argument("--scale-max", type=int, default=124, help="largest E8M0 scale byte")
    ap.add_argument("--dry-run", action="store_true", help="print the plan as JSON, write nothing")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()

    c = dict(PRESETS[args.preset])
    for k in list(c):
        v = getattr(args, k, None)
        if v is not None:
            c[k] = v
    if c["hidden"] % 32 or c["intermediate"] % 32:
        ap.error("hidden and intermediate must be multiples of 32 (MXFP4 blocks)")
    if not 0 <= args.scale_min <= args.scale_max <= 254:
        ap.error("need 0 <= --scale-min <= --scale-max <= 254")

    tensors = hf_tensors(c)
    kinds = {t[0]: (t[1], t[2], t[3]) for t in tensors}
    shards = [tensors] if args.single_file else plan_shards(tensors, args.max_shard_bytes)
    if len(shards) == 1:
        names = ["model.safetensors"]
    else:
        names = [f"model-{i:05d}-of-{len(shards) - 1:05d}.safetensors" for i in range(len(shards))]
    total = sum(nbytes(t[1], t[2]) for t in tensors)
    plan = {"config": c, "tensors": len(tensors), "total_size": total,
            "files": {n: sum(nbytes(t[1], t[2]) for t in s) for n, s in zip(names, shards)}}
    if args.dry_run:
        print(json.dumps(plan, indent=2))
        return 0
    if not args.out:
        ap.error("--out is required")

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(hf_config(c, args.rope_key), f, indent=2)
    with open(os.path.join(args.out, "generation_config.json"), "w") as f:
        json.dump(generation_config(c), f, indent=2)
    progress = Progress(total * (2 if args.original else 1), args.quiet)
    t0 = time.time()
    weight_map = {}
    identity = {t[0]: [t[0]] for t in tensors}
    for fname, shard in zip(names, shards):
        entries = [(t[0], t[1], t[2], nbytes(t[1], t[2])) for t in shard]
        write_file(os.path.join(args.out, fname), entries, identity, kinds, args, progress)
        weight_map.update({t[0]: fname for t in shard})
    if len(shards) > 1:
        with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))},
                      f, indent=2)
    if args.original:
        odir = os.path.join(args.out, "original")
        os.makedirs(odir, exist_ok=True)
        with open(os.path.join(odir, "config.json"), "w") as f:
            json.dump(original_config(c), f, indent=2)
        otensors = original_tensors(c)
        entries = [(t[0], t[1], t[2], nbytes(t[1], t[2])) for t in otensors]
        write_file(os.path.join(odir, "model.safetensors"), entries, {t[0]: t[3] for t in otensors},
                   kinds, args, progress)
    if not args.quiet:
        dt = time.time() - t0
        print(f"\nwrote {args.out}: {len(tensors)} tensors, {total} bytes in {len(names)} file(s)"
              f"{' + original/' if args.original else ''}, {dt:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
