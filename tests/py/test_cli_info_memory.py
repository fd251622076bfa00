"""`gptoss info --ctx N --parallel P` predicts the memory a run at that context needs.

Oracles: the architecture's KV arithmetic computed here from config.json (full-attention layers keep
every position in pages of 16, or the --kv-tokens pool, sliding layers a ring of window + prefill
chunk - 1), the bytes `generate --verbose`
reports the loaded runner actually allocated (the sum of the backend buffers it got).
"""
import json
import os
import re

import pytest

from cli_util import ROOT, make_tiny_model, run

TINY = ROOT / "tests" / "data" / "tiny" / "model"
TINY_MQA = ROOT / "tests" / "data" / "tiny_mqa" / "model"
PREFILL_CHUNK = 256  # generate/serve's prefill chunk (LoadOptions.max_step_tokens)


PAGE = 16  # positions per KV page of full-attention layers (model/kv_cache.h)


def expected_kv_bytes(config, ctx, parallel, kv_tokens=0):
    ctx = min(ctx, config["max_position_embeddings"])
    chunk = min(PREFILL_CHUNK, ctx)
    row = 2 * config["num_key_value_heads"] * config["head_dim"] * 4  # K and V, f32
    total = 0
    for kind in config["layer_types"]:
        if kind == "sliding_attention":
            total += parallel * min(ctx, config["sliding_window"] + chunk - 1) * row
        elif kv_tokens:  # one pool of pages shared by all sequences
            total += -(-kv_tokens // PAGE) * PAGE * row
        else:  # each sequence's context, in whole pages
            total += parallel * -(-ctx // PAGE) * PAGE * row
    return total


def info_json(gptoss_bin, model, *args):
    r = run(gptoss_bin, "info", model, "--json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("model", [TINY, TINY_MQA], ids=["tiny", "tiny_mqa"])
@pytest.mark.parametrize("ctx,parallel", [(16, 1), (8192, 1), (1000, 3), (131072, 4), (10**6, 1)])
def test_kv_bytes_follow_the_architecture(gptoss_bin, model, ctx, parallel):
    config = json.loads((model / "config.json").read_text())
    mem = info_json(gptoss_bin, model, "--ctx", ctx, "--parallel", parallel)["memory"]
    assert mem["context"] == min(ctx, config["max_position_embeddings"])
    assert mem["parallel"] == parallel
    assert mem["kv_cache_bytes"] == expected_kv_bytes(config, ctx, parallel)
    weights = info_json(gptoss_bin, model)["bytes"]["total"]
    assert mem["weights_bytes"] == weights
    assert mem["total_bytes"] == weights + mem["kv_cache_bytes"]


@pytest.mark.parametrize("kv_tokens", [1, 1000, 4096])
def test_kv_tokens_sizes_the_page_pool(gptoss_bin, kv_tokens):
    config = json.loads((TINY / "config.json").read_text())
    mem = info_json(gptoss_bin, TINY, "--ctx", 2048, "--parallel", 4, "--kv-tokens", kv_tokens)["memory"]
    assert mem["kv_pool_tokens"] == -(-kv_tokens // PAGE) * PAGE
    assert mem["kv_cache_bytes"] == expected_kv_bytes(config, 2048, 4, kv_tokens)


def test_text_output_has_the_memory_line(gptoss_bin):
    r = run(gptoss_bin, "info", TINY, "--ctx", "4096", "--parallel", "2")
    assert r.returncode == 0, r.stderr
    line = next(l for l in r.stdout.splitlines() if l.startswith("memory:"))
    assert "at context 4096 x 2 sequences" in line and "kv cache" in line and "weights" in line


@pytest.mark.parametrize("args,message", [
    (["--ctx", "8"], "--ctx must be in"),
    (["--parallel", "0"], "--parallel in"),
    (["--ctx", "lots"], "--ctx"),
])
def test_bad_options_are_named(gptoss_bin, args, message):
    r = run(gptoss_bin, "info", TINY, *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr


@pytest.fixture(scope="module")
def full_vocab_model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("info-mem"))


def test_prediction_is_what_generate_allocates(gptoss_bin, full_vocab_model):
    ctx = 65536
    predicted = info_json(gptoss_bin, full_vocab_model, "--ctx", ctx)["memory"]["kv_cache_bytes"]
    config = json.loads(open(os.path.join(full_vocab_model, "config.json")).read())
    assert predicted == expected_kv_bytes(config, ctx, 1)
    r = run(gptoss_bin, "generate", full_vocab_model, "--raw", "-p", "hi", "-n", "1", "--ctx", ctx,
            "--device", "cpu", "--threads", "1", "--verbose")
    assert r.returncode == 0, r.stderr
    assert int(re.search(r"kv cache (\d+) bytes", r.stderr).group(1)) == predicted
