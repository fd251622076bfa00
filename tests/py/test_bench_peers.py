"""bench/peers helpers: bytes read per decoded token (checked against the safetensors library's view of
the same files) and the summary table's roofline fractions and ratios (checked against arithmetic on
the inputs)."""
import json
import math
import re
import subprocess
import sys

import pytest
from safetensors import safe_open


ITEMSIZE = {"BF16": 2, "F16": 2, "F32": 4, "U8": 1, "I8": 1, "F64": 8, "I32": 4, "I64": 8}


def run(root, *args):
    return subprocess.run([sys.executable, *map(str, args)], cwd=root, capture_output=True, text=True,
                          timeout=60)


def test_bytes_per_token_matches_safetensors(root):
    model = root / "tests/data/tiny/model"
    cfg = json.loads((model / "config.json").read_text())
    active = cfg["num_experts_per_tok"] / cfg["num_local_experts"]
    expected, experts = 0.0, 0
    for f in sorted(model.glob("*.safetensors")):
        with safe_open(str(f), "np") as st:
            for name in st.keys():
                sl = st.get_slice(name)
                nbytes = math.prod(sl.get_shape()) * ITEMSIZE[sl.get_dtype()]
                if name == "model.embed_tokens.weight":
                    continue
                if ".mlp.experts." in name:
                    experts += 1
                    expected += nbytes * active
                else:
                    expected += nbytes
    assert experts > 0
    r = run(root, "bench/peers/bytes_per_token.py", model)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == int(expected)


def test_bytes_per_token_rejects_empty_dir(root, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"num_experts_per_tok": 4, "num_local_experts": 32}))
    r = run(root, "bench/peers/bytes_per_token.py", tmp_path)
    assert r.returncode != 0
    assert "no .safetensors" in r.stderr


def test_summary_fractions_and_ratios(root, tmp_path):
    (tmp_path / "gptoss-cpu-fast-1.json").write_text(json.dumps(
        {"prefill_tokens_per_s": 12.0, "decode_tokens_per_s": 6.0, "n_prompt": 512, "n_gen": 128}))
    (tmp_path / "gptoss-cpu-fast-1.err").write_text(
        json.dumps({"exit": 0, "wall_s": 1.0, "peak_gib": {"RssAnon": 0.5, "RssFile": 12.75}}) + "\n")
    (tmp_path / "llama-1.json").write_text(json.dumps([
        {"n_prompt": 512, "n_gen": 0, "avg_ts": 8.0, "backends": "CPU"},
        {"n_prompt": 0, "n_gen": 128, "avg_ts": 4.0, "backends": "CPU"}]))
    (tmp_path / "llama-2.json").write_text("not json")  # a failed run is reported, not fatal
    r = run(root, "bench/peers/summarize.py", tmp_path, "--bandwidth-gbs", "20", "30",
            "--bytes-per-token", "5e9")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    # roofline = mean bandwidth 25 GB/s / 5 GB = 5 tok/s: decode 6 -> 120%, 4 -> 80%
    assert "roofline 5.00 tok/s" in out
    assert re.search(r"\| gptoss \| cpu-fast \| 1 \| 12\.00 \(pp512\) \| 6\.00 \(tg128\) \| 120\.0% \| 0\.50 / 12\.75 \|",
                     out)
    assert re.search(r"\| llama\.cpp \| CPU \| 1 \| 8\.00 \(pp512\) \| 4\.00 \(tg128\) \| 80\.0% \| - \|", out)
    assert "llama-2.json: no result" in out
    assert "prefill: 12.00 / 8.00 = 1.50x" in out
    assert "decode:  6.00 / 4.00 = 1.50x" in out


@pytest.mark.parametrize("args", [["--bytes-per-token", "1"], ["--bandwidth-gbs", "1"]])
def test_summary_requires_bandwidth_and_bytes(root, tmp_path, args):
    r = run(root, "bench/peers/summarize.py", tmp_path, *args)
    assert r.returncode == 2


def test_bracketed_fractions_spread_and_steady_reps(root, tmp_path):
    # bw lines: time, best, median, best 1 thread (4 KB pages), best, best 1 thread (2 MB pages).
    tsv = tmp_path / "bracket.tsv"
    tsv.write_text("\n".join([
        "bw\t00:00:01\t40\t39\t25\t50\t30",
        "run\t00:00:09\tgptoss\t9",        # 4 KB: 9 x 4 / mean(40, 40) = 90%; 2 MB: 36 / 45 = 80%
        "bw\t00:00:10\t40\t38\t26\t40\t31",
        "run\t00:00:19\tgptoss\t8",        # 4 KB: 32 / mean(40, 60) = 64%, spread 40%: moved
        "bw\t00:00:20\t60\t58\t27\t60\t32",
        "run\t00:00:29\tllama.cpp\t",      # a failed rep: listed, not counted
        "bw\t00:00:30\t60\t59\t28\t60\t33",
        "run\t00:00:39\tllama.cpp\t12",    # 48 / 60 = 80% (both page sizes)
        "bw\t00:00:40\t60\t57\t29\t60\t34",
    ]) + "\n")
    r = run(root, "bench/peers/bracketed.py", tsv, "--bytes-per-token", "4e9")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert re.search(r"\| 00:00:09 \| gptoss \| 9\.00 \| 36\.00 \| 40\.00 / 40\.00 \| 22% \| 90\.0% \* \| "
                     r"50\.00 / 40\.00 \| 80\.0% \| 25\.00 / 26\.00; 30\.00 / 31\.00 \|", out)
    assert re.search(r"\| 00:00:19 \| gptoss \| 8\.00 \| 32\.00 \| 40\.00 / 60\.00 \| 40% \| 64\.0% \* \|", out)
    assert re.search(r"\| 00:00:29 \| llama\.cpp \| - \| - \|", out)
    assert re.search(r"\| 00:00:39 \| llama\.cpp \| 12\.00 \| 48\.00 \| 60\.00 / 60\.00 \| 0% \| 80\.0% \|", out)
    # gptoss: both reps moved (the first by its 2 MB measurements: 50 vs 40), so no steady rep.
    assert "gptoss: 2 reps, tg 8.50 tok/s mean; all reps (2): 4 KB median 77.0% (min 64.0, max 90.0)" in out
    assert "no steady rep" in out
    assert ("llama.cpp: 1 reps, tg 12.00 tok/s mean; all reps (1): 4 KB median 80.0% (min 80.0, max 80.0), "
            "2 MB median 80.0% (min 80.0, max 80.0); steady reps (1): 4 KB median 80.0%") in out
