#!/usr/bin/env python3
"""Record how transformers' GptOssConfig reads config.json variants (rope_scaling vs
rope_parameters, nulls, defaults, layer_types), as the oracle for gptoss's config parser.
Needs transformers (run with the torch venv); writes tests/data/loader/config_goldens.json.
The effective YaRN values are the ones transformers' rope init uses: beta_fast `or 32`,
beta_slow `or 1`, truncate defaulting to True."""
import json
import os
import sys

from transformers import GptOssConfig

HUB_20B = {
    "architectures": ["GptOssForCausalLM"], "attention_bias": True, "attention_dropout": 0.0,
    "eos_token_id": 200002, "experts_per_token": 4, "head_dim": 64, "hidden_act": "silu",
    "hidden_size": 2880, "initial_context_length": 4096, "initializer_range": 0.02,
    "intermediate_size": 2880,
    "layer_types": ["sliding_attention", "full_attention"] * 12,
    "max_position_embeddings": 131072, "model_type": "gpt_oss", "num_attention_heads": 64,
    "num_experts_per_tok": 4, "num_hidden_layers": 24, "num_key_value_heads": 8,
    "num_local_experts": 32, "output_router_logits": False, "pad_token_id": 199999,
    "quantization_config": {"quant_method": "mxfp4"}, "rms_norm_eps": 1e-05,
    "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0,
                     "original_max_position_embeddings": 4096, "rope_type": "yarn", "truncate": False},
    "rope_theta": 150000, "router_aux_loss_coef": 0.9, "sliding_window": 128, "swiglu_limit": 7.0,
    "tie_word_embeddings": False, "transformers_version": "4.55.0.dev0", "use_cache": True,
    "vocab_size": 201088,
}


def variant(**changes):
    j = json.loads(json.dumps(HUB_20B))
    for k, v in changes.items():
        if v is ...:
            j.pop(k, None)
        else:
            j[k] = v
    return j


SMALL = dict(num_hidden_layers=3, layer_types=..., num_local_experts=8, hidden_size=128,
             intermediate_size=64, num_attention_heads=4, num_key_value_heads=1, head_dim=32, vocab_size=300,
             eos_token_id=[5, 6])

CASES = {
    "hub_20b_rope_scaling": variant(),
    "rope_parameters_theta_inside": variant(
        rope_scaling=..., rope_theta=...,
        rope_parameters={"rope_type": "yarn", "rope_theta": 50000.0, "factor": 16.0, "beta_fast": 16.0,
                         "beta_slow": 2.0, "original_max_position_embeddings": 2048, "truncate": False}),
    "yarn_defaults_truncate_and_betas": variant(
        rope_scaling={"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 1024}),
    "only_model_type": {"model_type": "gpt_oss"},
    "absent_kv_heads_and_head_dim": {"model_type": "gpt_oss", "num_hidden_layers": 2, "hidden_size": 256,
                                     "num_attention_heads": 16, "num_local_experts": 4, "intermediate_size": 64},
    "rope_scaling_null": variant(rope_scaling=None),
    "small_default_layer_types": variant(**SMALL),
    "custom_layer_types": variant(num_hidden_layers=4,
                                  layer_types=["full_attention", "sliding_attention", "sliding_attention",
                                               "full_attention"]),
    "rope_default_type": variant(rope_scaling={"rope_type": "default"}),
}


def effective(cfg):
    rp = cfg.rope_parameters
    yarn = rp.get("rope_type") == "yarn"
    return {
        "num_layers": cfg.num_hidden_layers, "hidden_size": cfg.hidden_size,
        "num_heads": cfg.num_attention_heads, "num_kv_heads": cfg.num_key_value_heads,
        "head_dim": cfg.head_dim, "num_experts": cfg.num_local_experts,
        "experts_per_token": cfg.num_experts_per_tok, "intermediate_size": cfg.intermediate_size,
        "vocab_size": cfg.vocab_size, "sliding_window": cfg.sliding_window,
        "max_position_embeddings": cfg.max_position_embeddings,
        "rope_theta": float(rp["rope_theta"]),
        "rope_scaling_factor": float(rp["factor"]) if yarn else 1.0,
        "rope_beta_fast": float(rp.get("beta_fast") or 32) if yarn else None,
        "rope_beta_slow": float(rp.get("beta_slow") or 1) if yarn else None,
        "rope_original_max_position": rp["original_max_position_embeddings"] if yarn else None,
        "rope_truncate": bool(rp.get("truncate", True)) if yarn else None,
        "rms_norm_eps": cfg.rms_norm_eps, "swiglu_limit": cfg.swiglu_limit,
        "layer_is_sliding": [t == "sliding_attention" for t in cfg.layer_types],
        "eos_token_ids": ([] if cfg.eos_token_id is None else
                          cfg.eos_token_id if isinstance(cfg.eos_token_id, list) else [cfg.eos_token_id]),
    }


def main():
    out = {}
    for name, j in CASES.items():
        cfg = GptOssConfig.from_dict(json.loads(json.dumps(j)))
        out[name] = {"config_json": j, "expected": effective(cfg)}
    import transformers
    doc = {"transformers_version": transformers.__version__, "cases": out}
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "loader", "config_goldens.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    print(f"wrote {len(out)} cases to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
