"""`gptoss logits` (the exact cpu forward pass) against HF transformers' logits.

The oracle is tests/data/<ckpt>/goldens.safetensors, written by tools/make_goldens.py with
transformers' GptOssForCausalLM (float32, eager attention, MXFP4 experts dequantized) on the
committed checkpoints tests/data/<ckpt>/model:
- tiny: HF layout, 3 shards + index, `rope_scaling` spelling, truncate=false; 4 layers alternating
  sliding/full with window 8, 4 query / 2 KV heads of 64, hidden 64, 8 experts top-4, vocab 512.
- tiny_mqa: one model.safetensors, `rope_parameters` spelling, truncate=true; 3 layers (sliding,
  full, sliding) with window 5, 4 query heads on 1 KV head, hidden 96 (3 MXFP4 blocks), 16 experts
  top-4, intermediate 32, vocab 256, prompts up to 40 tokens.
- tiny_e128: gpt-oss-120b's router size on a tiny body: 128 experts top-4; 2 layers (sliding with
  window 6, full), 4 query / 2 KV heads of 64, hidden 64, intermediate 32, vocab 256, one
  model.safetensors, prompts of 2, 7, 13 and 20 tokens.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
import make_tiny_checkpoint as mtc  # noqa: E402

# Both sides compute in float32 from identical weights; only summation order differs. Measured
# max |diff| is ~7e-6 on logits of size ~8; 2e-4 leaves margin while any math error (window off by
# one, no YaRN concentration) moves logits by >1 (checked by mutating the code).
ABS_TOL = 2e-4


CHECKPOINTS = ["tiny", "tiny_mqa", "tiny_e128"]


@pytest.fixture(scope="module")
def tiny(root):
    return root / "tests" / "data" / "tiny"


def load_goldens(ckpt_dir):
    g = load_file(str(ckpt_dir / "goldens.safetensors"))
    n = len([k for k in g if k.startswith("logits_")])
    return [(g[f"tokens_{i}"].astype(np.int64), g[f"logits_{i}"]) for i in range(n)]


@pytest.fixture(scope="module")
def goldens(tiny):
    return load_goldens(tiny)


def run_logits(gptoss_bin, model, out, *args, check=True):
    r = subprocess.run([gptoss_bin, "logits", str(model), "--out", str(out), *map(str, args)],
                       capture_output=True, text=True, timeout=300)
    if check:
        assert r.returncode == 0, r.stderr
        return load_file(str(out))
    return r


def compare_with_goldens(got, goldens):
    worst = 0.0
    for i, (tokens, want) in enumerate(goldens):
        have = got[f"logits_{i}"]
        assert have.shape == want.shape and have.shape[0] == len(tokens)
        worst = max(worst, float(np.abs(have - want).max()))
        np.testing.assert_array_equal(have.argmax(-1), want.argmax(-1), err_msg=f"prompt {i}")
    assert worst < ABS_TOL
    return worst


def test_goldens_cover_the_cases_the_issue_names(goldens, tiny):
    lengths = [len(t) for t, _ in goldens]
    cfg = json.load(open(tiny / "model" / "config.json"))
    assert cfg["sliding_window"] == 8 and max(lengths) > 3 * cfg["sliding_window"]
    assert any(n % 2 for n in lengths) and len(set(lengths)) >= 4
    assert cfg["layer_types"] == ["sliding_attention", "full_attention"] * 2
    assert cfg["num_key_value_heads"] < cfg["num_attention_heads"] and cfg["head_dim"] == 64
    assert cfg["num_local_experts"] == 8 and cfg["num_experts_per_tok"] == 4


@pytest.mark.parametrize("ckpt", CHECKPOINTS)
def test_hf_layout_matches_transformers(gptoss_bin, root, ckpt, tmp_path):
    tiny = root / "tests" / "data" / ckpt
    got = run_logits(gptoss_bin, tiny / "model", tmp_path / "out.safetensors",
                     "--tokens-file", tiny / "prompts.json")
    worst = compare_with_goldens(got, load_goldens(tiny))
    print(f"{ckpt}: max |logit - transformers| = {worst:.3g}")


def test_yarn_truncate_flag_is_honoured(gptoss_bin, root, tmp_path):
    """tiny_mqa's goldens were made with truncate=true; the same weights with truncate=false (the
    Hub models' setting) leave position 0 alone and move later logits far beyond the tolerance."""
    src = root / "tests" / "data" / "tiny_mqa"
    dst = tmp_path / "m"
    shutil.copytree(src / "model", dst)
    cfg = json.load(open(dst / "config.json"))
    assert cfg["rope_parameters"]["truncate"] is True
    cfg["rope_parameters"]["truncate"] = False
    json.dump(cfg, open(dst / "config.json", "w"))
    got = run_logits(gptoss_bin, dst, tmp_path / "o.safetensors", "--tokens-file", src / "prompts.json")
    tokens, want = load_goldens(src)[-1]
    diff = np.abs(got[f"logits_{len(load_goldens(src)) - 1}"] - want).max(-1)
    assert diff[0] < ABS_TOL and diff[1:].max() > 20 * ABS_TOL, diff


# original/ has no truncate key: the reference always uses the fractional range, so only `tiny`
# (truncate=false) has the same math in both layouts.
@pytest.mark.parametrize("ckpt", ["tiny"])
def test_original_layout_matches_transformers(gptoss_bin, root, ckpt, tmp_path):
    tiny = root / "tests" / "data" / ckpt
    goldens = load_goldens(tiny)
    mtc.original_from_hf(str(tiny / "model"), str(tmp_path / "ckpt" / "original"))
    # A parent directory whose only checkpoint is original/, as in the hub repos.
    got = run_logits(gptoss_bin, tmp_path / "ckpt", tmp_path / "out.safetensors",
                     "--tokens-file", tiny / "prompts.json")
    compare_with_goldens(got, goldens)
    hf = run_logits(gptoss_bin, tiny / "model", tmp_path / "hf.safetensors",
                    "--tokens-file", tiny / "prompts.json")
    for k in hf:
        np.testing.assert_array_equal(got[k], hf[k])  # same weights, same bits


def test_single_file_and_rope_parameters_spelling_give_the_same_bits(gptoss_bin, tiny, tmp_path):
    """One model.safetensors instead of shards, and the newer `rope_parameters` config key."""
    src = tiny / "model"
    index = json.load(open(src / "model.safetensors.index.json"))
    tensors = {}
    for fn in sorted(set(index["weight_map"].values())):
        tensors.update(mtc.read_safetensors(str(src / fn)))
    out = []
    for name, (dt, shape, data) in tensors.items():
        t = mtc.Tensor(dt, shape, np.zeros(0, np.uint8))
        t.data = data
        out.append((name, t))
    dst = tmp_path / "single"
    dst.mkdir()
    mtc.write_safetensors(str(dst / "model.safetensors"), out)
    cfg = json.load(open(src / "config.json"))
    cfg["rope_parameters"] = dict(cfg.pop("rope_scaling"), rope_theta=float(cfg.pop("rope_theta")))
    json.dump(cfg, open(dst / "config.json", "w"))
    shutil.copy(src / "generation_config.json", dst)
    a = run_logits(gptoss_bin, src, tmp_path / "a.safetensors", "--tokens", "1,2,3,4,5,6,7,8,9,10")
    b = run_logits(gptoss_bin, dst, tmp_path / "b.safetensors", "--tokens", "1,2,3,4,5,6,7,8,9,10")
    np.testing.assert_array_equal(a["logits_0"], b["logits_0"])


def test_float32_export_gives_the_same_bits(gptoss_bin, tiny, tmp_path):
    """Dense tensors stored as F32 (widened bf16, exact) must give bit-identical logits."""
    src = tiny / "model"
    dst = tmp_path / "f32"
    shutil.copytree(src, dst)
    for fn in sorted(set(json.load(open(src / "model.safetensors.index.json"))["weight_map"].values())):
        out = []
        for name, (dt, shape, data) in mtc.read_safetensors(str(src / fn)).items():
            if dt == "BF16":
                t = mtc.Tensor("F32", shape, mtc.bf16_bits_to_f32(np.frombuffer(data, np.uint16)))
            else:
                t = mtc.Tensor(dt, shape, np.zeros(0, np.uint8))
                t.data = data
            out.append((name, t))
        mtc.write_safetensors(str(dst / fn), out)
    prompts = tiny / "prompts.json"
    a = run_logits(gptoss_bin, src, tmp_path / "a.safetensors", "--tokens-file", prompts)
    b = run_logits(gptoss_bin, dst, tmp_path / "b.safetensors", "--tokens-file", prompts)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_prefill_then_decode_equals_one_prefill(gptoss_bin, tiny, tmp_path):
    prompts = tiny / "prompts.json"
    whole = run_logits(gptoss_bin, tiny / "model", tmp_path / "whole.safetensors", "--tokens-file", prompts)
    for step in (1, 3):
        part = run_logits(gptoss_bin, tiny / "model", tmp_path / f"step{step}.safetensors",
                          "--tokens-file", prompts, "--step", step)
        for k in whole:
            np.testing.assert_array_equal(part[k], whole[k], err_msg=f"--step {step} {k}")
    # Internal steps of 2 tokens: sliding layers then keep a ring of 8 + 2 - 1 positions.
    ring = run_logits(gptoss_bin, tiny / "model", tmp_path / "ring.safetensors", "--tokens-file", prompts,
                      "--max-step-tokens", 2)
    for k in whole:
        np.testing.assert_array_equal(ring[k], whole[k], err_msg=k)


def test_thread_count_does_not_change_the_bits(gptoss_bin, tiny, tmp_path):
    """Each output element is computed by one thread in a fixed order (prompts here are large enough
    for the matmuls and experts to be split over threads)."""
    prompts = tiny / "prompts.json"
    one = run_logits(gptoss_bin, tiny / "model", tmp_path / "1.safetensors", "--tokens-file", prompts,
                     "--threads", 1)
    for n in (2, 3):
        many = run_logits(gptoss_bin, tiny / "model", tmp_path / f"{n}.safetensors", "--tokens-file", prompts,
                          "--threads", n)
        for k in one:
            np.testing.assert_array_equal(many[k], one[k], err_msg=f"--threads {n} {k}")


def test_batched_sequences_equal_each_alone(gptoss_bin, tiny, tmp_path):
    prompts = tiny / "prompts.json"
    batched = run_logits(gptoss_bin, tiny / "model", tmp_path / "b.safetensors", "--tokens-file", prompts)
    alone = run_logits(gptoss_bin, tiny / "model", tmp_path / "s.safetensors", "--tokens-file", prompts,
                       "--separate")
    assert len(batched) == 6
    for k in batched:
        np.testing.assert_array_equal(batched[k], alone[k], err_msg=k)
    # Repeated --tokens make the same prompts.
    ids = json.load(open(prompts))["prompts"]
    flags = [x for p in ids[:2] for x in ("--tokens", ",".join(map(str, p)))]
    two = run_logits(gptoss_bin, tiny / "model", tmp_path / "t.safetensors", *flags)
    np.testing.assert_array_equal(two["logits_1"], batched["logits_1"])


def test_sliding_window_limits_what_sliding_layers_see(gptoss_bin, tiny, tmp_path):
    """Widening the window changes exactly the positions that have keys outside it (p >= 8)."""
    wide = tmp_path / "wide"
    shutil.copytree(tiny / "model", wide)
    cfg = json.load(open(wide / "config.json"))
    cfg["sliding_window"] = 64
    json.dump(cfg, open(wide / "config.json", "w"))
    long_prompt = ",".join(map(str, json.load(open(tiny / "prompts.json"))["prompts"][-1]))
    a = run_logits(gptoss_bin, tiny / "model", tmp_path / "a.safetensors", "--tokens", long_prompt)["logits_0"]
    b = run_logits(gptoss_bin, wide, tmp_path / "b.safetensors", "--tokens", long_prompt)["logits_0"]
    np.testing.assert_array_equal(a[:8], b[:8])
    assert all(np.abs(a[p] - b[p]).max() > 1e-3 for p in range(8, len(a)))


def test_only_sliding_layers_forget_tokens_beyond_the_receptive_field(gptoss_bin, tmp_path):
    """2 layers, both sliding with window 8: position p sees tokens >= p - 14 only."""
    subprocess.run([sys.executable, str(mtc.__file__), "--out", str(tmp_path / "m"), "--layers", "2",
                    "--seed", "5"], check=True)
    cfg = json.load(open(tmp_path / "m" / "config.json"))
    cfg["layer_types"] = ["sliding_attention"] * 2
    json.dump(cfg, open(tmp_path / "m" / "config.json", "w"))
    ids = list(range(100, 130))
    changed = [7] + ids[1:]
    a = run_logits(gptoss_bin, tmp_path / "m", tmp_path / "a.safetensors",
                   "--tokens", ",".join(map(str, ids)), "--tokens", ",".join(map(str, changed)))
    d = np.abs(a["logits_0"] - a["logits_1"]).max(-1)
    assert (d[:15] > 1e-4).all() and (d[15:] == 0).all(), d


def test_bad_inputs_and_bad_models_fail_with_a_clear_message(gptoss_bin, tiny, tmp_path):
    out = tmp_path / "o.safetensors"
    r = run_logits(gptoss_bin, tiny / "model", out, "--tokens", "1,512", check=False)
    assert r.returncode == 1 and "outside the vocabulary of 512" in r.stderr
    r = run_logits(gptoss_bin, tiny / "model", out, "--tokens", "1,x", check=False)
    assert r.returncode == 2 and "'x' is not a token id" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"prompts": [[1, -2]]}')
    r = run_logits(gptoss_bin, tiny / "model", out, "--tokens-file", bad, check=False)
    assert r.returncode == 2 and "prompts[0][1]" in r.stderr
    r = run_logits(gptoss_bin, tmp_path / "nowhere", out, "--tokens", "1", check=False)
    assert r.returncode == 1 and "nowhere" in r.stderr
    r = run_logits(gptoss_bin, tiny / "model", out, "--tokens", "1", "--device", "tpu", check=False)
    assert r.returncode == 2 and "tpu" in r.stderr
    # A truncated shard: the loader's error names the file; no crash.
    broken = tmp_path / "broken"
    shutil.copytree(tiny / "model", broken)
    shard = broken / "model-00001-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:-100])
    r = run_logits(gptoss_bin, broken, out, "--tokens", "1", check=False)
    assert r.returncode == 1 and "model-00001-of-00002.safetensors" in r.stderr, r.stderr
    # A tensor of the wrong shape.
    cfg = json.load(open(tiny / "model" / "config.json"))
    cfg["intermediate_size"] = 96
    wrong = tmp_path / "wrong"
    shutil.copytree(tiny / "model", wrong)
    json.dump(cfg, open(wrong / "config.json", "w"))
    r = run_logits(gptoss_bin, wrong, out, "--tokens", "1", check=False)
    assert r.returncode == 1 and "gate_up_proj" in r.stderr, r.stderr
    assert not out.exists()


@pytest.mark.parametrize("ckpt", CHECKPOINTS)
def test_cuda_device_matches_the_exact_path(gptoss_bin, root, ckpt, tmp_path):
    """--device cuda runs the same model code on the CUDA backend's ops. Skips without a CUDA build
    or GPU. Tolerance: 1e-4 of the largest |logit|, the CUDA backend's own stated bound vs cpu."""
    tiny = root / "tests" / "data" / ckpt
    r = run_logits(gptoss_bin, tiny / "model", tmp_path / "g.safetensors", "--tokens-file",
                   tiny / "prompts.json", "--device", "cuda", check=False)
    if r.returncode != 0:
        assert "cuda" in r.stderr.lower(), r.stderr  # a clear refusal, not a crash
        pytest.skip(f"no CUDA here: {r.stderr.strip()}")
    gpu = load_file(str(tmp_path / "g.safetensors"))
    cpu = run_logits(gptoss_bin, tiny / "model", tmp_path / "c.safetensors", "--tokens-file", tiny / "prompts.json")
    for k in cpu:
        scale = float(np.abs(cpu[k]).max())
        assert float(np.abs(gpu[k] - cpu[k]).max()) < 1e-4 * scale, k
        np.testing.assert_array_equal(gpu[k].argmax(-1), cpu[k].argmax(-1), err_msg=k)
