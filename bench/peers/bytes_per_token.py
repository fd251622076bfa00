#!/usr/bin/env python3
"""Weight bytes read per decoded token (batch 1, context ~0) of a gpt-oss checkpoint in the HF
layout, from its safetensors headers: every tensor once, except the embedding table (one row per
token, negligible) and the expert tensors (only experts_per_token of num_local_experts are read).
Standard library only.

usage: bench/peers/bytes_per_token.py MODEL_DIR   -> prints the byte count
"""
import json
import pathlib
import struct
import sys


def tensor_bytes(path):
    """{name: byte size} from one .safetensors file's header."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return {k: v["data_offsets"][1] - v["data_offsets"][0] for k, v in header.items() if k != "__metadata__"}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    d = pathlib.Path(sys.argv[1])
    cfg = json.loads((d / "config.json").read_text())
    active = cfg["num_experts_per_tok"] / cfg["num_local_experts"]
    total = 0.0
    files = sorted(d.glob("*.safetensors"))
    if not files:
        sys.exit(f"{d}: no .safetensors files")
    for f in files:
        for name, size in tensor_bytes(f).items():
            if "embed_tokens" in name:
                continue
            total += size * active if ".mlp.experts." in name else size
    print(int(total))


if __name__ == "__main__":
    main()
