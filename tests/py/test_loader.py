"""`gptoss info` on checkpoints written by the `safetensors` package: layout, config, tensor
placement (checked against safetensors' own parse), bytes by kind, parameters; and the error for
every kind of broken model directory."""
import json
import os
import random
import shutil
import subprocess

import pytest
import safetensors

from loader_util import (expected_summary, hf_config_json, serialize_file, tiny_config, write_hf,
                         write_original)


def info(gptoss_bin, model, *flags):
    return subprocess.run([gptoss_bin, "info", str(model), *flags], capture_output=True, text=True,
                          timeout=60)


def info_json(gptoss_bin, model, *flags):
    r = info(gptoss_bin, model, "--json", *flags)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def info_error(gptoss_bin, model, *flags):
    r = info(gptoss_bin, model, *flags)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith("gptoss info: "), r.stderr
    return r.stderr


def check_against_safetensors(j, tensors):
    """Every tensor's dtype, shape and bytes at the reported file offset equal safetensors' parse."""
    by_name = {t["name"]: t for t in j["tensors"]}
    assert set(by_name) == set(tensors)
    parsed = {}
    for f in j["files"]:
        with open(f, "rb") as fh:
            data = fh.read()
        for name, t in safetensors.deserialize(data):
            parsed[name] = (f, t, data)
    assert set(parsed) == set(tensors)
    for name, t in by_name.items():
        f, ref, data = parsed[name]
        assert t["file"] == f
        assert t["dtype"] == ref["dtype"] and t["shape"] == list(ref["shape"])
        assert t["nbytes"] == len(ref["data"])
        assert data[t["offset"]:t["offset"] + t["nbytes"]] == bytes(ref["data"]), name
        assert bytes(ref["data"]) == tensors[name][2].tobytes()


def check_config(j, c):
    cfg = j["config"]
    assert cfg["num_layers"] == c["layers"]
    assert cfg["hidden_size"] == c["hidden"]
    assert cfg["num_heads"] == c["heads"]
    assert cfg["num_kv_heads"] == c["kv_heads"]
    assert cfg["head_dim"] == c["head_dim"]
    assert cfg["num_experts"] == c["experts"]
    assert cfg["experts_per_token"] == c["top_k"]
    assert cfg["intermediate_size"] == c["intermediate"]
    assert cfg["vocab_size"] == c["vocab"]
    assert cfg["sliding_window"] == c["window"]
    assert cfg["layer_is_sliding"] == [i % 2 == 0 for i in range(c["layers"])]
    assert cfg["rope_theta"] == 150000.0
    assert cfg["rope_scaling_factor"] == 32.0
    assert cfg["rope_beta_fast"] == 32.0 and cfg["rope_beta_slow"] == 1.0
    assert cfg["rope_original_max_position"] == 4096
    assert cfg["rope_truncate"] is False
    assert abs(cfg["rms_norm_eps"] - 1e-5) < 1e-12
    assert cfg["swiglu_limit"] == 7.0


def check_summary(j, tensors, c, layout="hf"):
    b, params, active = expected_summary(tensors, c, layout)
    assert j["tensor_count"] == len(tensors)
    assert j["bytes"] == b
    assert j["parameters"] == params
    assert j["active_parameters"] == active


@pytest.mark.parametrize("rope_key", ["rope_scaling", "rope_parameters"])
def test_single_file_hf(gptoss_bin, tmp_path, rope_key):
    c = tiny_config()
    tensors = write_hf(tmp_path, c, rope_key=rope_key)
    j = info_json(gptoss_bin, tmp_path, "--tensors")
    assert j["layout"] == "hf"
    assert j["files"] == [str(tmp_path / "model.safetensors")]
    check_config(j, c)
    assert j["config"]["eos_token_ids"] == [c["vocab"] - 2, c["vocab"] - 1, 3]
    check_summary(j, tensors, c)
    check_against_safetensors(j, tensors)


def test_sharded_hf_with_index(gptoss_bin, tmp_path):
    c = tiny_config(layers=4, experts=8, top_k=4)
    tensors = write_hf(tmp_path, c, shards=3)
    j = info_json(gptoss_bin, tmp_path, "--tensors")
    assert len(j["files"]) == 3
    assert all(os.path.basename(f).endswith("-of-00002.safetensors") for f in j["files"])
    index = json.load(open(tmp_path / "model.safetensors.index.json"))
    for t in j["tensors"]:
        assert os.path.basename(t["file"]) == index["weight_map"][t["name"]]
    check_config(j, c)
    check_summary(j, tensors, c)
    check_against_safetensors(j, tensors)


def test_float32_export_is_accepted(gptoss_bin, tmp_path):
    c = tiny_config()
    tensors = write_hf(tmp_path, c, dense="F32")
    j = info_json(gptoss_bin, tmp_path)
    check_summary(j, tensors, c)
    assert j["bytes"]["bf16"] == 0 and j["bytes"]["f32"] > 0


def test_generation_config_is_optional(gptoss_bin, tmp_path):
    c = tiny_config()
    write_hf(tmp_path, c, generation=False)
    j = info_json(gptoss_bin, tmp_path)
    assert j["config"]["eos_token_ids"] == [c["vocab"] - 2]  # config.json's eos_token_id


def test_original_layout_direct_and_from_parent(gptoss_bin, tmp_path):
    c = tiny_config()
    tensors = write_original(tmp_path / "original", c)
    json.dump({"eos_token_id": [7, 8]}, open(tmp_path / "generation_config.json", "w"))
    for d in (tmp_path / "original", str(tmp_path / "original") + "/", tmp_path):
        j = info_json(gptoss_bin, d, "--tensors")
        assert j["layout"] == "original"
        assert j["dir"] == str(tmp_path / "original")
        check_config(j, c)
        assert j["config"]["max_position_embeddings"] == 4096 * 32
        assert j["config"]["eos_token_ids"] == [7, 8]
        check_summary(j, tensors, c, "original")
        check_against_safetensors(j, tensors)


def test_text_output(gptoss_bin, tmp_path):
    c = tiny_config()
    tensors = write_hf(tmp_path, c)
    r = info(gptoss_bin, tmp_path)
    assert r.returncode == 0, r.stderr
    b, params, _ = expected_summary(tensors, c)
    assert "layout:       hf (1 file)" in r.stdout
    assert f"tensors:      {len(tensors)}" in r.stdout
    assert f"({b['total']} bytes)" in r.stdout
    assert f"parameters:   {params}" in r.stdout


# ---------------------------------------------------------------------------------------------
# Broken directories: each gives exit code 1 and a message naming the file and what was expected.

def test_truncated_shard(gptoss_bin, tmp_path):
    write_hf(tmp_path, tiny_config(layers=4, experts=8, top_k=4), shards=3)
    shard = tmp_path / "model-00001-of-00002.safetensors"
    size = os.path.getsize(shard)
    with open(shard, "r+b") as f:
        f.truncate(size - 100)
    err = info_error(gptoss_bin, tmp_path)
    assert str(shard) in err and "run past the end of the data" in err and "truncated" in err
    with open(shard, "r+b") as f:
        f.truncate(5)
    err = info_error(gptoss_bin, tmp_path)
    assert str(shard) in err and "too short" in err


def test_header_corruptions(gptoss_bin, tmp_path):
    write_hf(tmp_path, tiny_config())
    path = tmp_path / "model.safetensors"
    good = path.read_bytes()
    n = int.from_bytes(good[:8], "little")

    def corrupt(data):
        path.write_bytes(data)
        return info_error(gptoss_bin, tmp_path)

    assert "absurd" in corrupt((2**40).to_bytes(8, "little") + good[8:])
    assert "exceeds" in corrupt((len(good)).to_bytes(8, "little") + good[8:])
    assert "not valid JSON" in corrupt(good[:8] + b"X" + good[9:])
    header = json.loads(good[8:8 + n])
    name = "model.layers.0.self_attn.q_proj.bias"

    def with_header(h):
        text = json.dumps(h).encode()
        text += b" " * (n - len(text)) if len(text) <= n else b""
        return corrupt(len(text).to_bytes(8, "little") + text + good[8 + n:])

    h = json.loads(json.dumps(header))
    h[name]["dtype"] = "Q4_0"
    assert f"tensor '{name}'" in with_header(h) and "Q4_0" in with_header(h)
    h = json.loads(json.dumps(header))
    h[name]["shape"] = [h[name]["shape"][0] + 1]
    assert "needs" in with_header(h)
    h = json.loads(json.dumps(header))
    b, e = h[name]["data_offsets"]
    h[name]["data_offsets"] = [b - 2, e - 2]
    assert "overlaps" in with_header(h)
    assert "not a JSON object" in corrupt(good[:8] + b"[" + b" " * (n - 2) + b"]" + good[8 + n:]) or True
    err = corrupt(good[:8] + b"[" + b" " * (n - 2) + b"]" + good[8 + n:])
    assert "must be a JSON object" in err
    assert "bytes of data after the last tensor" in corrupt(good + b"\0" * 16)


def test_index_errors(gptoss_bin, tmp_path):
    write_hf(tmp_path, tiny_config(layers=4, experts=8, top_k=4), shards=3)
    idx_path = tmp_path / "model.safetensors.index.json"
    idx = json.load(open(idx_path))

    def with_index(i):
        json.dump(i, open(idx_path, "w"))
        return info_error(gptoss_bin, tmp_path)

    i = json.loads(json.dumps(idx))
    i["weight_map"]["lm_head.weight"] = "model-00007-of-00009.safetensors"
    err = with_index(i)
    assert "model-00007-of-00009.safetensors" in err and "does not exist" in err and "lm_head.weight" in err
    i = json.loads(json.dumps(idx))
    i["weight_map"]["model.layers.9.extra"] = "model-00000-of-00002.safetensors"
    err = with_index(i)
    assert "model.layers.9.extra" in err and "does not contain it" in err
    i = json.loads(json.dumps(idx))
    del i["weight_map"]["model.norm.weight"]
    assert "which the index does not list" in with_index(i)
    os.remove(tmp_path / "model-00000-of-00002.safetensors")
    err = with_index(idx)
    assert "model-00000-of-00002.safetensors" in err and "does not exist" in err


@pytest.mark.parametrize("field,value,fragment", [
    ("hidden_size", 0, "hidden_size = 0 must be positive"),
    ("num_key_value_heads", 3, "not a multiple of num_key_value_heads = 3"),
    ("num_experts_per_tok", 9, "num_experts_per_tok = 9 exceeds num_local_experts = 4"),
    ("head_dim", 15, "head_dim = 15 must be even"),
    ("vocab_size", -5, "vocab_size = -5 must be positive"),
    ("layer_types", ["sliding_attention"], "'layer_types' has 1 entries"),
    ("rope_scaling", {"rope_type": "linear", "factor": 2.0}, "rope_type' is 'linear'"),
    ("sliding_window", "big", "'sliding_window' must be an integer"),
])
def test_bad_config(gptoss_bin, tmp_path, field, value, fragment):
    c = tiny_config()
    write_hf(tmp_path, c)
    json.dump(hf_config_json(c, **{field: value}), open(tmp_path / "config.json", "w"))
    err = info_error(gptoss_bin, tmp_path)
    assert str(tmp_path / "config.json") in err and fragment in err, err


def test_tensor_set_mismatch(gptoss_bin, tmp_path):
    c = tiny_config()
    write_hf(tmp_path, c)
    cfg = hf_config_json(c, num_hidden_layers=3,
                         layer_types=["sliding_attention", "full_attention", "sliding_attention"])
    json.dump(cfg, open(tmp_path / "config.json", "w"))
    err = info_error(gptoss_bin, tmp_path)
    assert "19 missing tensor(s): model.layers.2." in err
    cfg = hf_config_json(c, intermediate_size=64)
    json.dump(cfg, open(tmp_path / "config.json", "w"))
    err = info_error(gptoss_bin, tmp_path)
    assert "tensor 'model.layers.0.mlp.experts.gate_up_proj_blocks' is U8 [4, 64, 2, 16], expected U8 [4, 128, 2, 16]" in err
    # --no-validate opens it anyway (what a converter or inspector wants).
    j = info_json(gptoss_bin, tmp_path, "--no-validate")
    assert j["tensor_count"] == 2 * 19 + 3


def test_not_a_model_dir(gptoss_bin, tmp_path):
    assert "no such directory" in info_error(gptoss_bin, tmp_path / "missing")
    assert "no config.json" in info_error(gptoss_bin, tmp_path)
    r = info(gptoss_bin, tmp_path, "--bogus")
    assert r.returncode == 2 and "unknown option --bogus" in r.stderr


def test_random_header_corruptions_agree_with_safetensors(gptoss_bin, tmp_path):
    """Single-byte corruptions of a header: gptoss accepts the container exactly when the
    safetensors package does (--no-validate, so a renamed tensor is not a config mismatch), and
    never crashes or hangs."""
    c = tiny_config(layers=1, experts=2, top_k=1, vocab=8)
    write_hf(tmp_path, c)
    path = tmp_path / "model.safetensors"
    good = path.read_bytes()
    n = int.from_bytes(good[:8], "little")
    rng = random.Random(7)
    positions = list(range(0, 8 + n))
    rng.shuffle(positions)
    disagreements = []
    rejected = 0
    for pos in positions[:300]:
        data = bytearray(good)
        data[pos] = rng.choice([rng.randrange(256), ord("0") + rng.randrange(10), ord('"'), ord("}"), 0x20])
        data = bytes(data)
        try:
            safetensors.deserialize(data)
            ok_ref = True
        except Exception:
            ok_ref = False
        path.write_bytes(data)
        r = info(gptoss_bin, tmp_path, "--no-validate")
        assert r.returncode in (0, 1), (pos, r.returncode, r.stderr)
        rejected += r.returncode == 1
        if (r.returncode == 0) != ok_ref:
            disagreements.append((pos, data[max(0, pos - 20):pos + 20], ok_ref, r.stderr.strip()))
    assert not disagreements, disagreements[:5]
    assert rejected > 50


def test_hf_cache_snapshot_with_symlinks(gptoss_bin, tmp_path):
    """The HF cache stores a snapshot as relative symlinks into blobs/; a missing blob (an
    interrupted download) is named in the error."""
    c = tiny_config(layers=4, experts=8, top_k=4)
    src = tmp_path / "src"
    tensors = write_hf(src, c, shards=3)
    blobs = tmp_path / "models--openai--gpt-oss-test" / "blobs"
    snap = tmp_path / "models--openai--gpt-oss-test" / "snapshots" / "abc123"
    blobs.mkdir(parents=True)
    snap.mkdir(parents=True)
    for i, f in enumerate(sorted(os.listdir(src))):
        shutil.move(src / f, blobs / f"blob{i}")
        os.symlink(f"../../blobs/blob{i}", snap / f)
    j = info_json(gptoss_bin, snap)
    check_summary(j, tensors, c)
    assert all(f.startswith(str(snap)) for f in j["files"])
    shard = "model-00001-of-00002.safetensors"
    os.remove(blobs / f"blob{sorted(os.listdir(snap)).index(shard)}")
    err = info_error(gptoss_bin, snap)
    assert shard in err and "does not exist" in err, err


def test_hub_id_from_cache_and_file_argument(gptoss_bin, tmp_path):
    """MODEL may be a hub id already in the HF cache (never downloaded by info), or a
    .safetensors file inside a model directory."""
    c = tiny_config()
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "cache" / "models--openai--gpt-oss-tiny"
    snap = repo / "snapshots" / commit
    tensors = write_hf(snap, c)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    env = dict(os.environ, HF_HUB_CACHE=str(tmp_path / "cache"), HF_HUB_OFFLINE="1")
    r = subprocess.run([gptoss_bin, "info", "openai/gpt-oss-tiny", "--json"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["dir"] == str(snap)
    check_summary(j, tensors, c)
    r = subprocess.run([gptoss_bin, "info", "openai/not-there"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 1 and "gptoss pull openai/not-there" in r.stderr, r.stderr
    j = info_json(gptoss_bin, snap / "model.safetensors")
    assert j["dir"] == str(snap)


GOLDENS = json.load(open(os.path.join(os.path.dirname(__file__), "..", "data", "loader", "config_goldens.json")))


@pytest.mark.parametrize("case", sorted(GOLDENS["cases"]))
def test_config_matches_transformers(gptoss_bin, tmp_path, case):
    """config.json variants read as transformers' GptOssConfig reads them (goldens recorded by
    tools/make_config_goldens.py): rope spellings, defaults, layer_types, eos ids."""
    g = GOLDENS["cases"][case]
    json.dump(g["config_json"], open(tmp_path / "config.json", "w"))
    serialize_file({}, tmp_path / "model.safetensors")
    cfg = info_json(gptoss_bin, tmp_path, "--no-validate")["config"]
    for key, want in g["expected"].items():
        if want is None:
            continue
        if isinstance(want, float):
            assert cfg[key] == pytest.approx(want, rel=1e-6), key
        else:
            assert cfg[key] == want, key


def test_original_layout_in_several_files(gptoss_bin, tmp_path):
    """original/ for 120b is split into model--0000k-of-00007.safetensors; like the reference
    loader, every .safetensors in the folder is read and an index there is not needed."""
    c = tiny_config()
    orig = tmp_path / "original"
    tensors = write_original(orig, c)
    os.remove(orig / "model.safetensors")
    names = list(tensors)
    half = len(names) // 2
    serialize_file({n: tensors[n] for n in names[:half]}, orig / "model--00001-of-00002.safetensors")
    serialize_file({n: tensors[n] for n in names[half:]}, orig / "model--00002-of-00002.safetensors")
    (orig / "model.safetensors.index.json").write_text("not the HF index format")
    j = info_json(gptoss_bin, orig)
    assert j["layout"] == "original" and len(j["files"]) == 2
    check_summary(j, tensors, c, "original")
