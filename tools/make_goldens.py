#!/usr/bin/env python3
"""Record HF transformers' logits on a tiny gpt-oss checkpoint: the oracle for the forward pass.

Run with the torch venv (never needed by CI, which only reads the committed output):
    /work/venv-torch/bin/python tools/make_goldens.py --model tests/data/tiny/model \
        --prompts tests/data/tiny/prompts.json --out tests/data/tiny/goldens.safetensors

Loads the checkpoint with GptOssForCausalLM (Mxfp4Config(dequantize=True), float32, eager attention),
checks that every parameter equals the file's bytes decoded independently here (so the MXFP4 experts
really were used, not re-initialised), checks that no router top-k decision is a near-tie, then runs
every prompt alone (no padding) and saves logits_<i> [T, vocab] float32 plus tokens_<i> int64.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import GptOssForCausalLM, Mxfp4Config
from transformers.models.gpt_oss import modeling_gpt_oss

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_tiny_checkpoint as mtc  # noqa: E402


def load_file_tensors(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) \
        else ["model.safetensors"]
    out = {}
    for fn in files:
        for name, (dt, shape, data) in mtc.read_safetensors(os.path.join(model_dir, fn)).items():
            if dt == "BF16":
                out[name] = mtc.bf16_bits_to_f32(np.frombuffer(data, np.uint16)).reshape(shape)
            else:
                out[name] = np.frombuffer(data, np.uint8).reshape(shape)
    return out


def check_parameters(model, files):
    """Every model parameter must equal the checkpoint (decoded here, independently of transformers)."""
    params = dict(model.named_parameters())
    checked = 0
    for name, p in params.items():
        got = p.detach().float().numpy()
        if name.endswith("experts.gate_up_proj") or name.endswith("experts.down_proj"):
            want = mtc.dequantize_mxfp4(files[name + "_blocks"], files[name + "_scales"])  # [E, rows, cols]
            want = np.transpose(want, (0, 2, 1))  # transformers keeps [E, in, out]
        else:
            want = files[name]
        if got.shape != want.shape or not np.array_equal(got, want):
            raise SystemExit(f"parameter {name} differs from the checkpoint (shape {got.shape} vs {want.shape})")
        checked += 1
    print(f"checked {checked} parameters equal to the checkpoint (MXFP4 experts decoded independently)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompts", required=True, help='JSON {"prompts": [[ids...], ...]}')
    ap.add_argument("--out", required=True)
    ap.add_argument("--min-router-gap", type=float, default=1e-3)
    ap.add_argument("--min-argmax-margin", type=float, default=1e-3,
                    help="smallest allowed gap between the two largest logits of any position")
    a = ap.parse_args()

    torch.manual_seed(0)
    model = GptOssForCausalLM.from_pretrained(
        a.model, quantization_config=Mxfp4Config(dequantize=True), dtype=torch.float32,
        attn_implementation="eager", experts_implementation="eager")
    model.eval()
    check_parameters(model, load_file_tensors(a.model))

    k = model.config.num_experts_per_tok
    gaps = []

    def router_hook(_mod, _inp, out):
        logits = out[0].detach()
        top = torch.topk(logits, k + 1, dim=-1).values
        gaps.append(float((top[:, k - 1] - top[:, k]).min()))

    for layer in model.model.layers:
        layer.mlp.router.register_forward_hook(router_hook)

    # Count how often the SwiGLU clamps bite, so the goldens are known to exercise them.
    clamps = {"gate > limit": 0, "|up| > limit": 0, "values": 0}
    apply_gate = modeling_gpt_oss.GptOssExperts._apply_gate

    def counting_apply_gate(self, gate_up):
        gate, up = gate_up[..., ::2], gate_up[..., 1::2]
        clamps["gate > limit"] += int((gate > self.limit).sum())
        clamps["|up| > limit"] += int((up.abs() > self.limit).sum())
        clamps["values"] += gate.numel()
        return apply_gate(self, gate_up)

    modeling_gpt_oss.GptOssExperts._apply_gate = counting_apply_gate

    prompts = json.load(open(a.prompts))["prompts"]
    tensors = {}
    with torch.no_grad():
        for i, ids in enumerate(prompts):
            x = torch.tensor([ids], dtype=torch.long)
            logits = model(input_ids=x, use_cache=False).logits[0].float().contiguous()
            tensors[f"logits_{i}"] = logits
            tensors[f"tokens_{i}"] = x[0].clone()
            print(f"prompt {i}: {len(ids)} tokens, |logits| max {logits.abs().max():.3f}")
    margin = min(float((torch.topk(t, 2, dim=-1).values[:, 0] - torch.topk(t, 2, dim=-1).values[:, 1]).min())
                 for k, t in tensors.items() if k.startswith("logits_"))
    print(f"smallest top-1/top-2 logit margin: {margin:.3e}")
    if margin < a.min_argmax_margin:
        raise SystemExit("an argmax is a near-tie (tests compare argmax); pick other prompts")
    print(f"SwiGLU clamp hits: {clamps}")
    if clamps["gate > limit"] == 0 or clamps["|up| > limit"] == 0:
        raise SystemExit("the prompts never reach the SwiGLU clamp; scale the expert weights up")
    print(f"smallest gap between the k-th and (k+1)-th router logit: {min(gaps):.3e}")
    if min(gaps) < a.min_router_gap:
        raise SystemExit("a router decision is a near-tie; pick another seed or prompt")
    save_file(tensors, a.out, metadata={"transformers": __import__("transformers").__version__,
                                        "torch": torch.__version__, "dtype": "float32", "attn": "eager"})


if __name__ == "__main__":
    main()
