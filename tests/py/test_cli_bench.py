"""`gptoss bench`: llama-bench style table and --json on a tiny checkpoint. The numbers on a tiny
model are only a smoke figure; what is checked is the shape and that every rate is a real,
positive measurement consistent with the per-repetition times reported beside it."""
import json
import re

import pytest

from cli_util import ROOT, run

TINY = ROOT / "tests" / "data" / "tiny" / "model"


def test_bench_json(gptoss_bin):
    r = run(gptoss_bin, "bench", TINY, "-p", "32", "-n", "8", "-r", "3", "--threads", "1", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["n_prompt"] == 32 and j["n_gen"] == 8 and j["reps"] == 3 and j["threads"] == 1
    assert j["backend"] == "cpu-fast" and j["params"] > 0 and j["size_bytes"] > 0  # auto, CPU-only
    assert j["prefill_tokens_per_s"] > 0 and j["decode_tokens_per_s"] > 0
    assert len(j["prefill_seconds"]) == 3 and len(j["decode_seconds"]) == 3
    # The rate is the mean of the repetitions' rates (llama-bench's avg_ts).
    assert j["prefill_tokens_per_s"] == pytest.approx(sum(32 / s for s in j["prefill_seconds"]) / 3, rel=1e-9)
    assert j["decode_tokens_per_s"] == pytest.approx(sum(8 / s for s in j["decode_seconds"]) / 3, rel=1e-9)


def test_bench_table(gptoss_bin):
    r = run(gptoss_bin, "bench", TINY, "-p", "16", "-n", "4", "-r", "2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert re.match(r"\|\s*model\s*\|\s*size\s*\|\s*params\s*\|\s*backend\s*\|\s*threads\s*\|\s*test\s*\|\s*t/s\s*\|",
                    lines[0])
    assert re.match(r"\|[-: |]+\|$", lines[1])
    assert re.search(r"\|\s*pp16\s*\|\s*[0-9.]+ ± [0-9.]+\s*\|$", lines[2])
    assert re.search(r"\|\s*tg4\s*\|\s*[0-9.]+ ± [0-9.]+\s*\|$", lines[3])
    assert "CPU" in lines[2] and "MiB" in lines[2]
    # -n 0 skips the decode test.
    r = run(gptoss_bin, "bench", TINY, "-p", "8", "-n", "0", "-r", "1", "--json")
    j = json.loads(r.stdout)
    assert "decode_tokens_per_s" not in j and j["prefill_tokens_per_s"] > 0


@pytest.mark.parametrize("args,needle", [
    (["-r", "0"], "-r"),
    (["-p", "0", "-n", "0"], "not both 0"),
    (["--bogus"], "unknown option --bogus"),
    (["-p", "x"], "-p"),
])
def test_bench_bad_flags(gptoss_bin, args, needle):
    r = run(gptoss_bin, "bench", TINY, *args)
    assert r.returncode == 2 and needle in r.stderr


def test_bench_missing_model(gptoss_bin, tmp_path):
    r = run(gptoss_bin, "bench", tmp_path / "nope")
    assert r.returncode == 1 and "nope" in r.stderr


def test_bench_parallel_json(gptoss_bin):
    """--parallel: N sequences through the serving engine at once; every sequence really decodes -n
    tokens (counted per sequence from the engine's token events), all N prompts share the first step,
    so each later step decodes all N: N x (n - 1) tokens in the S_TG window."""
    r = run(gptoss_bin, "bench", TINY, "--parallel", "1,3,8", "-p", "12", "-n", "5", "-r", "2",
            "--threads", "1", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["n_prompt"] == 12 and j["n_gen"] == 5 and j["reps"] == 2 and j["warmup"] is True
    rows = j["parallel"]
    assert [x["n_parallel"] for x in rows] == [1, 3, 8]
    for x in rows:
        n = x["n_parallel"]
        assert x["n_kv"] == n * (12 + 5)
        assert x["tokens_per_sequence"] == [5] * n
        assert x["generated_tokens"] == [n * 5] * 2
        assert x["decode_tokens"] == [n * 4] * 2
        assert len(x["prefill_seconds"]) == 2 and len(x["decode_seconds"]) == 2
        assert all(s > 0 for s in x["prefill_seconds"] + x["decode_seconds"] + x["total_seconds"])
        assert x["decode_tokens_per_s"] == pytest.approx(
            sum(n * 4 / s for s in x["decode_seconds"]) / 2, rel=1e-9)
        assert x["prefill_tokens_per_s"] == pytest.approx(
            sum(n * 12 / s for s in x["prefill_seconds"]) / 2, rel=1e-9)
        for pp, tg, total in zip(x["prefill_seconds"], x["decode_seconds"], x["total_seconds"]):
            assert total == pytest.approx(pp + tg, rel=1e-6)


def test_bench_parallel_table_and_flags(gptoss_bin):
    r = run(gptoss_bin, "bench", TINY, "--parallel", "2,4", "-p", "8", "-n", "3", "-r", "1", "--no-warmup")
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if l.startswith("|")]
    assert re.match(r"\|\s*PP\s*\|\s*TG\s*\|\s*B\s*\|\s*N_KV\s*\|\s*T_PP s\s*\|\s*S_PP t/s\s*\|\s*T_TG s\s*\|"
                    r"\s*S_TG t/s\s*\|\s*T s\s*\|\s*S t/s\s*\|", lines[0])
    for line, n in zip(lines[2:], (2, 4)):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[:4] == ["8", "3", str(n), str(n * 11)]
        assert all(float(c) >= 0 for c in cells[4::2]) and all(float(c) > 0 for c in cells[5::2])
    assert len(lines) == 4
    for args, needle in ((["--parallel", "0"], "--parallel takes"), (["--parallel", "2,x"], "--parallel takes"),
                         (["--parallel", "2", "-n", "1"], "-n >= 2")):
        r = run(gptoss_bin, "bench", TINY, "-p", "8", *args)
        assert r.returncode == 2 and needle in r.stderr, r.stderr


def test_bench_warmup_flag(gptoss_bin):
    r = run(gptoss_bin, "bench", TINY, "-p", "8", "-n", "2", "-r", "1", "--no-warmup", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["warmup"] is False and j["prefill_tokens_per_s"] > 0 and j["decode_tokens_per_s"] > 0


def test_bench_host_sampling_flag(gptoss_bin):
    """--host-sampling (decode steps copy the logits rows and take the argmax on the host instead of the
    device's greedy token; on the cpu the rows are always used) is reported in --json, tg and --parallel."""
    r = run(gptoss_bin, "bench", TINY, "-p", "8", "-n", "4", "-r", "1", "--host-sampling", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["host_sampling"] is True and j["decode_tokens_per_s"] > 0
    r = run(gptoss_bin, "bench", TINY, "-p", "8", "-n", "4", "-r", "1", "--json")
    assert json.loads(r.stdout)["host_sampling"] is False
    r = run(gptoss_bin, "bench", TINY, "--parallel", "2", "-p", "8", "-n", "3", "-r", "1", "--host-sampling", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["host_sampling"] is True and j["parallel"][0]["tokens_per_sequence"] == [3, 3]
