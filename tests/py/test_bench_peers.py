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
