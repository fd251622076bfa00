#!/usr/bin/env python3
"""Compares `gptoss logits` output with HF transformers on the same checkpoint and tokens.

    compare_with_transformers.py --model DIR --tokens 1,2,3 --gptoss L.safetensors [--gptoss L2 ...]

transformers loads the checkpoint with its MXFP4 experts dequantized (Mxfp4Config(dequantize=True)),
runs it in float32 with eager attention (on the GPU when present, spilling to CPU memory past
--gpu-mem), and each gptoss logits file (tensor logits_0 [T, vocab]) is compared position by position:
max absolute error, max relative error (|a-b| / max|b| over the row), argmax agreement.
Needs torch + transformers (the GPU machine has both); prints one JSON object.
"""
import argparse
import json
import time

import torch
from safetensors.torch import load_file
from transformers import GptOssForCausalLM, Mxfp4Config


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", required=True, help="comma-separated ids")
    ap.add_argument("--gptoss", action="append", required=True, help="gptoss logits output file(s)")
    ap.add_argument("--gpu-mem", default="120GiB", help="GPU memory transformers may use")
    ap.add_argument("--cpu-mem", default="110GiB")
    a = ap.parse_args()
    ids = [int(t) for t in a.tokens.split(",")]

    # Full float32 on the GPU: no TF32 in matmuls (it would flip near-tied router choices).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    t0 = time.time()
    kwargs = dict(quantization_config=Mxfp4Config(dequantize=True), attn_implementation="eager")
    if torch.cuda.is_available():
        kwargs["device_map"] = "auto"
        kwargs["max_memory"] = {0: a.gpu_mem, "cpu": a.cpu_mem}
    model = None
    for extra in ({"experts_implementation": "eager"}, {}):  # the plain per-expert loop when offered
        try:
            model = GptOssForCausalLM.from_pretrained(a.model, dtype=torch.float32, **kwargs, **extra)
            break
        except (TypeError, ValueError):
            continue
    if model is None:
        raise SystemExit("transformers could not load the model")
    # Some transformers versions keep dequantized experts in bf16 whatever dtype says: make every
    # parameter float32, so the reference really is the float32 model.
    model = model.float().eval()
    dtypes = sorted({str(p.dtype) for p in model.parameters()})
    load_s = time.time() - t0
    dev = next(model.parameters()).device
    with torch.no_grad():
        ref = model(input_ids=torch.tensor([ids], device=dev), use_cache=False).logits[0].float().cpu()
    result = {"model": a.model, "tokens": len(ids), "transformers_load_s": round(load_s, 1),
              "transformers_device_map": str(getattr(model, "hf_device_map", dev))[:200],
              "transformers": __import__("transformers").__version__, "torch": torch.__version__,
              "param_dtypes": dtypes, "experts_implementation": str(getattr(model.config, "experts_implementation", None)),
              "compare": {}}
    for path in a.gptoss:
        got = load_file(path)["logits_0"].float()
        assert got.shape == ref.shape, f"{path}: shape {tuple(got.shape)} vs transformers {tuple(ref.shape)}"
        diff = (got - ref).abs()
        row_scale = ref.abs().amax(dim=-1, keepdim=True).clamp_min(1e-30)
        result["compare"][path] = {
            "max_abs_err": float(diff.max()),
            "max_rel_err": float((diff / row_scale).max()),
            "argmax_agree": int((got.argmax(-1) == ref.argmax(-1)).sum()),
            "positions": int(ref.shape[0]),
            "max_abs_logit": float(ref.abs().max()),
        }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
