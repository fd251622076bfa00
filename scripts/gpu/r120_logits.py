#!/usr/bin/env python3
"""Compares `gptoss logits` outputs (safetensors, float32 logits_<i> [T, vocab]) against a reference file: per
position max |a - ref| / max |ref| (the decode check's measure), argmax agreement and the reference's top-2 gap.
numpy only. usage: r120_logits.py REF.safetensors OTHER.safetensors [OTHER ...]"""
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools"))
from make_tiny_checkpoint import read_safetensors  # noqa: E402


def load(path):
    """{name: float32 array} of a safetensors file of float32 tensors."""
    return {n: np.frombuffer(raw, dtype=np.float32).reshape(shape) for n, (_, shape, raw) in read_safetensors(path).items()}


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
