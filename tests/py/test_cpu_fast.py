"""`gptoss logits --device cpu-fast` (SIMD matmuls, runtime dispatch) against the exact cpu path.

cpu-fast decodes bf16 and MXFP4 weights to exactly the values the exact path uses; only the f32
summation order of the matmuls differs. The oracle is the exact path (itself checked against HF
transformers in test_forward.py) and transformers' goldens. Bounds, per position of every prompt:
- argmax of the logits equals the exact path's (and the goldens');
- KL(softmax(exact) || softmax(fast)) < KL_BOUND = 1e-6 nats (measured: ~1e-12 or less);
- max |logit difference| < ABS_TOL = 2e-4 against the goldens, as the exact path must meet.
"""
import numpy as np
import pytest
from safetensors.numpy import load_file

from test_forward import ABS_TOL, load_goldens, run_logits

KL_BOUND = 1e-6


def log_softmax(z):
    z = z.astype(np.float64)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def kl_per_position(exact, fast):
    lp, lq = log_softmax(exact), log_softmax(fast)
    return (np.exp(lp) * (lp - lq)).sum(-1)


@pytest.mark.parametrize("ckpt", ["tiny", "tiny_mqa", "tiny_e128"])
@pytest.mark.parametrize("threads", [1, 2])
def test_cpu_fast_agrees_with_exact(gptoss_bin, root, ckpt, threads, tmp_path, monkeypatch):
    """The f32 kernels: int8 experts off (their prefill GEMM rounds the activations;
    test_cpu_fast_int8_experts holds it to its own bounds)."""
    monkeypatch.setenv("GPTOSS_CPU_FAST_MOE_I8", "0")
    src = root / "tests" / "data" / ckpt
    prompts = src / "prompts.json"
    exact = run_logits(gptoss_bin, src / "model", tmp_path / "e.safetensors", "--tokens-file", prompts,
                       "--device", "cpu", "--threads", threads)
    fast = run_logits(gptoss_bin, src / "model", tmp_path / "f.safetensors", "--tokens-file", prompts,
                      "--device", "cpu-fast", "--threads", threads)
    goldens = load_goldens(src)
    # The fast kernels really ran: their summation order gives different low bits somewhere.
    assert any(not np.array_equal(exact[k], fast[k]) for k in exact)
    worst_kl = 0.0
    for i, (tokens, want) in enumerate(goldens):
        e, f = exact[f"logits_{i}"], fast[f"logits_{i}"]
        assert f.shape == e.shape == want.shape
        np.testing.assert_array_equal(f.argmax(-1), e.argmax(-1), err_msg=f"prompt {i}")
        np.testing.assert_array_equal(f.argmax(-1), want.argmax(-1), err_msg=f"prompt {i}")
        kl = kl_per_position(e, f)
        assert kl.max() < KL_BOUND, (i, kl.max())
        worst_kl = max(worst_kl, float(kl.max()))
        assert np.abs(f - want).max() < ABS_TOL
    print(f"{ckpt} threads={threads}: max KL(exact||fast) = {worst_kl:.3g}")


def test_cpu_fast_decode_steps_agree_with_exact(gptoss_bin, root, tmp_path, monkeypatch):
    """One token per step (the decode shape: T = 1 GEMVs) through the same prompts. With AMX off:
    AMX prefill (test_cpu_fast_amx_prefill) sums in another order, so batch invariance holds for the
    f32 paths only (the prompts decode together, T = 6 per step, which AMX would take). With the
    int8 expert GEMVs off too: they take the 1-2 token steps at the end (test_cpu_fast_int8_experts
    holds them to their bound)."""
    monkeypatch.setenv("GPTOSS_CPU_FAST_AMX", "0")
    monkeypatch.setenv("GPTOSS_CPU_FAST_MOE_I8", "0")
    src = root / "tests" / "data" / "tiny"
    prompts = src / "prompts.json"
    exact = run_logits(gptoss_bin, src / "model", tmp_path / "e.safetensors", "--tokens-file", prompts,
                       "--device", "cpu", "--step", 1)
    fast = run_logits(gptoss_bin, src / "model", tmp_path / "f.safetensors", "--tokens-file", prompts,
                      "--device", "cpu-fast", "--step", 1)
    fast_prefill = run_logits(gptoss_bin, src / "model", tmp_path / "p.safetensors", "--tokens-file", prompts,
                              "--device", "cpu-fast")
    for k in exact:
        np.testing.assert_array_equal(fast[k].argmax(-1), exact[k].argmax(-1), err_msg=k)
        assert kl_per_position(exact[k], fast[k]).max() < KL_BOUND, k
        # Batch invariance: a token gets the same bits decoded alone as inside a prefill batch.
        np.testing.assert_array_equal(fast[k], fast_prefill[k], err_msg=k)


# The int8 expert GEMVs of 1-2 token calls and the int8 GEMM of larger ones (prefill, 3+ sequences;
# AVX-512 VNNI body only) (docs/cpu-fast-int8-experts.md): on by default where the AVX-512 VNNI body
# runs, GPTOSS_CPU_FAST_MOE_I8=1 forces them on wherever the CPU has a body. The GEMM gives each
# token the GEMV's bits, so the bounds below hold for every mode.
# Measured on the Sapphire Rapids VM (AVX-512 VNNI body), tiny and tiny_mqa, every
# prompt decoded alone one token per step (every MoE call int8) and all together (the last steps):
# 2 int8 parts (the default): argmax = exact at every position, max KL 6.3e-9, max |logit diff| 4.0e-4;
# 1 part (GPTOSS_CPU_FAST_MOE_I8_PARTS=1): max KL 4.0e-4, max |logit diff| 0.10, and the argmax
# flips at one position of each checkpoint (so 1 part stays opt-in and gets no argmax assertion).
I8_BOUNDS = {"2": (1e-7, 2e-3), "1": (2e-3, 0.5)}  # parts: (KL, max |logit diff|)


@pytest.mark.parametrize("ckpt", ["tiny", "tiny_mqa", "tiny_e128"])
@pytest.mark.parametrize("parts", ["2", "1"])
@pytest.mark.parametrize("mode", [("--step", 1, "--separate"), ("--step", 1), ()], ids=["alone", "together", "prefill"])
def test_cpu_fast_int8_experts(gptoss_bin, root, ckpt, parts, mode, tmp_path, monkeypatch):
    """Decode (GEMVs; with the prompts together, 6 tokens a step: the GEMM where it runs) and prefill
    (the GEMM where it runs, else f32) with int8 experts against the exact path: the stated KL and
    logit bounds, and (2 parts) the argmax of the exact path and of the goldens at every position.
    Skipped where the CPU has no int8 kernel, and prefill where the GEMM does not run."""
    src = root / "tests" / "data" / ckpt
    prompts = src / "prompts.json"
    exact = run_logits(gptoss_bin, src / "model", tmp_path / "e.safetensors", "--tokens-file", prompts,
                       "--device", "cpu")
    monkeypatch.setenv("GPTOSS_CPU_FAST_PROFILE", "1")
    monkeypatch.setenv("GPTOSS_CPU_FAST_MOE_I8", "1")
    monkeypatch.setenv("GPTOSS_CPU_FAST_MOE_I8_PARTS", parts)
    r = run_logits(gptoss_bin, src / "model", tmp_path / "f.safetensors", "--tokens-file", prompts,
                   "--device", "cpu-fast", *mode, check=False)
    assert r.returncode == 0, r.stderr
    if "moe int8: on" not in r.stderr:
        line = next((ln for ln in r.stderr.splitlines() if "moe int8:" in ln), "no moe int8 line in the profile")
        pytest.skip(line.strip())
    assert f"moe int8: on (" in r.stderr and f", {parts} int8 parts" in r.stderr
    if not mode and "the GEMM above" not in r.stderr:
        pytest.skip("prefill: the int8 GEMM does not run here (f32 prefill)")
    fast = load_file(str(tmp_path / "f.safetensors"))
    kl_bound, abs_bound = I8_BOUNDS[parts]
    worst_kl = worst_abs = 0.0
    for i, (tokens, want) in enumerate(load_goldens(src)):
        e, f = exact[f"logits_{i}"], fast[f"logits_{i}"]
        assert f.shape == e.shape == want.shape
        if parts == "2":
            np.testing.assert_array_equal(f.argmax(-1), e.argmax(-1), err_msg=f"prompt {i}")
            np.testing.assert_array_equal(f.argmax(-1), want.argmax(-1), err_msg=f"prompt {i}")
        worst_kl = max(worst_kl, float(kl_per_position(e, f).max()))
        worst_abs = max(worst_abs, float(np.abs(f - e).max()))
    assert worst_kl < kl_bound and worst_abs < abs_bound, (worst_kl, worst_abs)
    # The int8 path really ran: the f32 paths stay within 1e-5 of the exact logits.
    assert worst_abs > 1e-5
    print(f"{ckpt} int8 parts={parts} {mode}: max KL(exact||fast) = {worst_kl:.3g}, max |diff| = {worst_abs:.3g}")


# Measured on the Sapphire Rapids VM (tiny, tiny_mqa): max KL 3 parts 1.9e-12 (as the f32 path),
# 2 parts 6.3e-10; max |amx - exact| / max |exact| 3 parts 8.2e-7, 2 parts 1.1e-5.
AMX_REL_BOUND = {3: 4e-6, 2: 5e-5}


@pytest.mark.parametrize("ckpt", ["tiny", "tiny_mqa"])
@pytest.mark.parametrize("parts", [3, 2])
def test_cpu_fast_amx_prefill(gptoss_bin, root, ckpt, parts, tmp_path, monkeypatch):
    """Prefill on AMX (bf16 tiles, activations split into `parts` bf16 terms) against the exact path:
    same argmax at every position of every golden, KL(exact||fast) < KL_BOUND, and the stated bound
    on max |fast - exact| relative to max |exact| per prompt. Skipped where AMX is unusable."""
    src = root / "tests" / "data" / ckpt
    prompts = src / "prompts.json"
    exact = run_logits(gptoss_bin, src / "model", tmp_path / "e.safetensors", "--tokens-file", prompts,
                       "--device", "cpu")
    monkeypatch.setenv("GPTOSS_CPU_FAST_PROFILE", "1")
    monkeypatch.setenv("GPTOSS_CPU_FAST_AMX", "1")
    monkeypatch.setenv("GPTOSS_CPU_FAST_AMX_PARTS", str(parts))
    r = run_logits(gptoss_bin, src / "model", tmp_path / "a.safetensors", "--tokens-file", prompts,
                   "--device", "cpu-fast", check=False)
    assert r.returncode == 0, r.stderr
    if "amx: on" not in r.stderr:
        line = next((ln for ln in r.stderr.splitlines() if "amx:" in ln), "no amx line in the profile")
        pytest.skip(line.strip())
    assert f"amx: on ({parts} bf16 parts" in r.stderr
    amx = load_file(str(tmp_path / "a.safetensors"))
    monkeypatch.setenv("GPTOSS_CPU_FAST_AMX", "0")
    f32 = run_logits(gptoss_bin, src / "model", tmp_path / "f.safetensors", "--tokens-file", prompts,
                     "--device", "cpu-fast")
    # AMX really ran: other low bits than the f32 prefill somewhere.
    assert any(not np.array_equal(amx[k], f32[k]) for k in amx)
    worst_kl = worst_rel = 0.0
    for i, (tokens, want) in enumerate(load_goldens(src)):
        e, a = exact[f"logits_{i}"], amx[f"logits_{i}"]
        assert a.shape == e.shape == want.shape
        np.testing.assert_array_equal(a.argmax(-1), e.argmax(-1), err_msg=f"prompt {i}")
        np.testing.assert_array_equal(a.argmax(-1), want.argmax(-1), err_msg=f"prompt {i}")
        kl = kl_per_position(e, a)
        assert kl.max() < KL_BOUND, (i, kl.max())
        rel = float(np.abs(a - e).max() / np.abs(e).max())
        assert rel < AMX_REL_BOUND[parts], (i, rel)
        worst_kl, worst_rel = max(worst_kl, float(kl.max())), max(worst_rel, rel)
    print(f"{ckpt} amx parts={parts}: max KL(exact||amx) = {worst_kl:.3g}, max rel error = {worst_rel:.3g}")


def test_unknown_device_is_named(gptoss_bin, root, tmp_path):
    r = run_logits(gptoss_bin, root / "tests" / "data" / "tiny" / "model", tmp_path / "o.safetensors",
                   "--tokens", "1,2", "--device", "cpu-slow", check=False)
    assert r.returncode != 0 and "cpu-slow" in r.stderr and "cpu-fast" in r.stderr


def test_auto_device_is_cpu_fast(gptoss_bin, root):
    """Without a GPU, the default device is cpu-fast (its self-check passes here); cpu stays exact."""
    import json
    import subprocess
    model = root / "tests" / "data" / "tiny" / "model"
    out = subprocess.run([str(gptoss_bin), "bench", str(model), "-p", "4", "-n", "2", "-r", "1", "--json"],
                         capture_output=True, text=True, check=True)
    backend = json.loads(out.stdout)["backend"]
    if backend == "cuda":
        pytest.skip("a GPU is present: auto picks cuda")
    assert backend == "cpu-fast"
    out = subprocess.run([str(gptoss_bin), "bench", str(model), "-p", "4", "-n", "2", "-r", "1", "--json",
                          "--device", "cpu"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["backend"] == "cpu"


def cpu_flags():
    """The CPU's feature flags as /proc/cpuinfo names them (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


AVX512_I8 = {"avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512vbmi", "avx512_vbmi2", "avx2", "fma"}


@pytest.mark.parametrize("env, target, want", [
    (None, None, "default"),
    ("0", None, "moe int8: off (GPTOSS_CPU_FAST_MOE_I8=0)"),
    (None, "avx2", "moe int8: off (the default with the AVX2 body; GPTOSS_CPU_FAST_MOE_I8=1 turns it on)"),
    ("1", "avx2", "moe int8: on (avx2, 2 int8 parts, calls of up to 2 tokens; larger: f32, the int8 GEMM needs "
                  "the AVX-512 VNNI body)")])
def test_profile_names_the_int8_choice(gptoss_bin, root, tmp_path, monkeypatch, env, target, want):
    """The profile says whether the int8 expert GEMVs run and why not: on by default where the
    AVX-512 VNNI body runs (the CPU's flags in /proc/cpuinfo say where), off by default with the AVX2
    body, off with the variable set to 0, on with it set to 1."""
    flags = cpu_flags()
    if not flags or not {"avx2", "fma"} <= flags:
        pytest.skip("no x86-64 CPU with AVX2 + FMA (where the int8 kernel has a body)")
    if want == "default":
        want = ("moe int8: on (avx512-vnni, 2 int8 parts, every call: GEMVs up to 2 tokens, the GEMM above)"
                if AVX512_I8 <= flags else
                "moe int8: off (the default with the AVX2 body; GPTOSS_CPU_FAST_MOE_I8=1 turns it on)")
    monkeypatch.setenv("GPTOSS_CPU_FAST_PROFILE", "1")
    monkeypatch.delenv("GPTOSS_CPU_FAST_MOE_I8_PARTS", raising=False)
    for var, value in (("GPTOSS_CPU_FAST_MOE_I8", env), ("GPTOSS_CPU_FAST_MOE_I8_TARGET", target)):
        if value is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, value)
    r = run_logits(gptoss_bin, root / "tests" / "data" / "tiny" / "model", tmp_path / "o.safetensors",
                   "--tokens", "1,2", "--device", "cpu-fast", check=False)
    assert r.returncode == 0, r.stderr
    assert want in r.stderr, r.stderr


def test_profile_names_the_int8_gemm_switch(gptoss_bin, root, tmp_path, monkeypatch):
    """GPTOSS_CPU_FAST_MOE_I8_GEMM=0 keeps the int8 GEMVs and sends larger calls to f32, and the
    profile says so; only where the GEMM runs by default (AVX-512 VNNI)."""
    flags = cpu_flags()
    if not AVX512_I8 <= flags:
        pytest.skip("the int8 GEMM needs the AVX-512 VNNI body")
    monkeypatch.setenv("GPTOSS_CPU_FAST_PROFILE", "1")
    for var in ("GPTOSS_CPU_FAST_MOE_I8", "GPTOSS_CPU_FAST_MOE_I8_PARTS", "GPTOSS_CPU_FAST_MOE_I8_TARGET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GPTOSS_CPU_FAST_MOE_I8_GEMM", "0")
    r = run_logits(gptoss_bin, root / "tests" / "data" / "tiny" / "model", tmp_path / "o.safetensors",
                   "--tokens", "1,2", "--device", "cpu-fast", check=False)
    assert r.returncode == 0, r.stderr
    assert ("moe int8: on (avx512-vnni, 2 int8 parts, calls of up to 2 tokens; larger: f32, "
            "GPTOSS_CPU_FAST_MOE_I8_GEMM=0)") in r.stderr, r.stderr


def test_int8_prefill_equals_decode(gptoss_bin, root, tmp_path, monkeypatch):
    """With the int8 experts on by default and their GEMM running (AVX-512 VNNI), a token gets the
    same bits decoded alone (GEMVs), decoded beside the other prompts (6 tokens a step: the GEMM)
    and inside the prefill (the GEMM): batch invariance without GPTOSS_CPU_FAST_MOE_I8=0. AMX off
    (its prefill sums in another order). Skipped where the GEMM does not run; the profile says, and
    GPTOSS_CPU_FAST_MOE_I8_GEMM=0 (f32 prefill) must break the equality (the check can fail)."""
    monkeypatch.setenv("GPTOSS_CPU_FAST_AMX", "0")
    monkeypatch.delenv("GPTOSS_CPU_FAST_MOE_I8", raising=False)
    monkeypatch.delenv("GPTOSS_CPU_FAST_MOE_I8_PARTS", raising=False)
    monkeypatch.delenv("GPTOSS_CPU_FAST_MOE_I8_GEMM", raising=False)
    monkeypatch.setenv("GPTOSS_CPU_FAST_PROFILE", "1")
    src = root / "tests" / "data" / "tiny"
    prompts = src / "prompts.json"
    pre = run_logits(gptoss_bin, src / "model", tmp_path / "p.safetensors", "--tokens-file", prompts,
                     "--device", "cpu-fast", check=False)
    assert pre.returncode == 0, pre.stderr
    if "the GEMM above" not in pre.stderr:
        line = next((ln for ln in pre.stderr.splitlines() if "moe int8:" in ln), "no moe int8 line")
        pytest.skip(line.strip())
    monkeypatch.delenv("GPTOSS_CPU_FAST_PROFILE")
    prefill = load_file(str(tmp_path / "p.safetensors"))
    alone = run_logits(gptoss_bin, src / "model", tmp_path / "a.safetensors", "--tokens-file", prompts,
                       "--device", "cpu-fast", "--step", 1, "--separate")
    together = run_logits(gptoss_bin, src / "model", tmp_path / "t.safetensors", "--tokens-file", prompts,
                          "--device", "cpu-fast", "--step", 1)
    monkeypatch.setenv("GPTOSS_CPU_FAST_MOE_I8_GEMM", "0")
    f32_prefill = run_logits(gptoss_bin, src / "model", tmp_path / "f.safetensors", "--tokens-file", prompts,
                             "--device", "cpu-fast")
    for k in prefill:
        np.testing.assert_array_equal(prefill[k], alone[k], err_msg=k)
        np.testing.assert_array_equal(prefill[k], together[k], err_msg=k)
    assert any(not np.array_equal(prefill[k], f32_prefill[k]) for k in prefill)


@pytest.mark.parametrize("env, want", [
    ("l1", "bf16 gemv prefetch: l1: PREFETCHT0, 16 steps (GPTOSS_CPU_FAST_BF16_PREFETCH=l1)"),
    ("l2", "bf16 gemv prefetch: l2: PREFETCHT1, 48 steps (GPTOSS_CPU_FAST_BF16_PREFETCH=l2)"),
    ("L1", "GPTOSS_CPU_FAST_BF16_PREFETCH must be l1 or l2; the default is used")])
def test_profile_names_the_bf16_prefetch(gptoss_bin, root, tmp_path, monkeypatch, env, want):
    """The profile names the bf16 GEMVs' prefetch the variable chose; a value other than l1 / l2 is
    named as an error (the run goes on with the CPU's default)."""
    monkeypatch.setenv("GPTOSS_CPU_FAST_PROFILE", "1")
    monkeypatch.setenv("GPTOSS_CPU_FAST_BF16_PREFETCH", env)
    r = run_logits(gptoss_bin, root / "tests" / "data" / "tiny" / "model", tmp_path / "o.safetensors",
                   "--tokens", "1,2", "--device", "cpu-fast", check=False)
    assert r.returncode == 0, r.stderr
    assert want in r.stderr, r.stderr


@pytest.mark.parametrize("ckpt", ["tiny", "tiny_mqa"])
def test_simd_avx2_switch_runs_the_avx2_code(gptoss_bin, root, ckpt, tmp_path, monkeypatch):
    """GPTOSS_CPU_FAST_SIMD=avx2 runs cpu-fast as on an AVX2 + FMA machine: Highway's AVX2 target,
    the int8 kernel's AVX2 body (off by default there, as on such a machine; on with
    GPTOSS_CPU_FAST_MOE_I8=1), no AMX; the profile names each. Its logits meet the f32 bounds against
    the exact path and the goldens (int8 on, decode one token per step: the int8 bounds), and where
    the CPU has AVX-512 they differ from the default target's in the low bits (other lane counts,
    another summation order): the AVX2 code really ran. A value other than avx2 is named as an error."""
    flags = cpu_flags()
    if not {"avx2", "fma"} <= flags:
        pytest.skip("no x86-64 CPU with AVX2 + FMA")
    src = root / "tests" / "data" / ckpt
    prompts = src / "prompts.json"
    for var in ("GPTOSS_CPU_FAST_MOE_I8", "GPTOSS_CPU_FAST_MOE_I8_PARTS", "GPTOSS_CPU_FAST_MOE_I8_TARGET",
                "GPTOSS_CPU_FAST_MOE_I8_GEMM", "GPTOSS_CPU_FAST_SIMD"):
        monkeypatch.delenv(var, raising=False)
    exact = run_logits(gptoss_bin, src / "model", tmp_path / "e.safetensors", "--tokens-file", prompts,
                       "--device", "cpu")
    monkeypatch.setenv("GPTOSS_CPU_FAST_MOE_I8", "0")
    default = run_logits(gptoss_bin, src / "model", tmp_path / "d.safetensors", "--tokens-file", prompts,
                         "--device", "cpu-fast")
    monkeypatch.delenv("GPTOSS_CPU_FAST_MOE_I8")
    monkeypatch.setenv("GPTOSS_CPU_FAST_PROFILE", "1")
    monkeypatch.setenv("GPTOSS_CPU_FAST_SIMD", "avx2")
    r = run_logits(gptoss_bin, src / "model", tmp_path / "f.safetensors", "--tokens-file", prompts,
                   "--device", "cpu-fast", check=False)
    assert r.returncode == 0, r.stderr
    for want in ("simd: AVX2 (GPTOSS_CPU_FAST_SIMD=avx2)", "amx: off (GPTOSS_CPU_FAST_SIMD=avx2)",
                 "moe int8: off (the default with the AVX2 body; GPTOSS_CPU_FAST_MOE_I8=1 turns it on)"):
        assert want in r.stderr, r.stderr
    fast = load_file(str(tmp_path / "f.safetensors"))
    goldens = load_goldens(src)
    for i, (tokens, want) in enumerate(goldens):
        e, f = exact[f"logits_{i}"], fast[f"logits_{i}"]
        np.testing.assert_array_equal(f.argmax(-1), e.argmax(-1), err_msg=f"prompt {i}")
        np.testing.assert_array_equal(f.argmax(-1), want.argmax(-1), err_msg=f"prompt {i}")
        assert kl_per_position(e, f).max() < KL_BOUND
        assert np.abs(f - want).max() < ABS_TOL
    if "avx512f" in flags:
        assert any(not np.array_equal(default[k], fast[k]) for k in fast)
    # The int8 AVX2 body, decode one token per step.
    monkeypatch.setenv("GPTOSS_CPU_FAST_MOE_I8", "1")
    r = run_logits(gptoss_bin, src / "model", tmp_path / "i.safetensors", "--tokens-file", prompts,
                   "--device", "cpu-fast", "--step", 1, check=False)
    assert r.returncode == 0, r.stderr
    assert "moe int8: on (avx2, 2 int8 parts," in r.stderr, r.stderr
    i8 = load_file(str(tmp_path / "i.safetensors"))
    kl_bound, abs_bound = I8_BOUNDS["2"]
    for i, (tokens, want) in enumerate(goldens):
        e, f = exact[f"logits_{i}"], i8[f"logits_{i}"]
        np.testing.assert_array_equal(f.argmax(-1), e.argmax(-1), err_msg=f"prompt {i}")
        assert kl_per_position(e, f).max() < kl_bound and np.abs(f - e).max() < abs_bound
    monkeypatch.setenv("GPTOSS_CPU_FAST_SIMD", "avx512")
    r = run_logits(gptoss_bin, src / "model", tmp_path / "x.safetensors", "--tokens", "1,2", "--device",
                   "cpu-fast", check=False)
    assert r.returncode == 0, r.stderr
    assert "GPTOSS_CPU_FAST_SIMD must be avx2; ignored" in r.stderr, r.stderr
    assert "(GPTOSS_CPU_FAST_SIMD=avx2)" not in r.stderr
