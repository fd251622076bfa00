#!/usr/bin/env python3
"""Compares `gptoss logits` outputs (safetensors, float32 logits_<i> [T, vocab]) against a reference file: per
position max |a - ref| / max |ref| (the decode check's measure), argmax agreement and the reference's top-2 gap.
numpy only. usage: r120_logits.py REF.safetensors OTHER.safetensors [OTHER ...]"""
import json
import struct
import sys

import numpy as np


def load(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=np.float32).reshape(v["shape"])
    return out


def main():
    ref = load(sys.argv[1])
    for other in sys.argv[2:]:
        got = load(other)
        for name in sorted(ref):
            r, g = ref[name].astype(np.float64), got[name].astype(np.float64)
            rel = np.abs(g - r).max(axis=1) / np.abs(r).max(axis=1)
            top2 = np.sort(r, axis=1)[:, -2:]
            same = (g.argmax(axis=1) == r.argmax(axis=1)).sum()
            print(f"{other} {name}: rel per position {' '.join(f'{x:.2e}' for x in rel)}; max {rel.max():.3e}; "
                  f"argmax {same}/{len(r)}; ref top-2 gap min {(top2[:, 1] - top2[:, 0]).min():.3f}")


if __name__ == "__main__":
    main()
