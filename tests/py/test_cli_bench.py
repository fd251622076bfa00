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
