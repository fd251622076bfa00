"""tokenizer.json (Hugging Face byte-level BPE) gives the same ids as the .tiktoken path.

The tokenizer.json is produced by transformers' TikTokenConverter from the repo's rank file
(tools/make_tokenizer_json.py, ~28 MB, so it is generated here rather than committed).
"""
import json
import subprocess
import sys

import pytest

import test_tokenizer as tt
from test_tokenizer import enc  # noqa: F401  (fixture)

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture(scope="session")
def hf_json(root, tmp_path_factory):
    sys.path.insert(0, str(root / "tools"))
    import make_tokenizer_json

    out = tmp_path_factory.mktemp("hf") / "tokenizer.json"
    tok = make_tokenizer_json.build(root / "tests/data/o200k_base.tiktoken")
    tok.save(str(out))
    return out, tok


def test_tokenizer_json_ids_match_tiktoken_and_hf(gptoss_bin, enc, hf_json):
    path, hf = hf_json
    items = tt.corpus()[:1200] + tt.RUNS
    got = tt.tokenize_batch(gptoss_bin, items, ["--vocab", str(path)])
    for t, g in zip(items, got):
        assert g == enc.encode_ordinary(t), t
    # The converter's own tokenizer agrees too (our claim rests on tiktoken; this checks the file).
    for t in items[:300]:
        assert hf.encode(t, add_special_tokens=False).ids == enc.encode_ordinary(t), t


def test_tokenizer_json_specials_and_model_dir(gptoss_bin, enc, hf_json, tmp_path):
    path, _ = hf_json
    text = "<|start|>user<|message|>Hi<|end|><|endofprompt|><|reserved_200500|>"
    got = json.loads(tt.run(gptoss_bin, ["tokenize", "--vocab", str(path), "--special", text]))
    assert got == enc.encode(text, allowed_special="all")
    model = tmp_path / "model"
    model.mkdir()
    (model / "tokenizer.json").symlink_to(path)
    assert json.loads(tt.run(gptoss_bin, ["tokenize", "--model", str(model), "--special", text])) == got
    bare = tmp_path / "bare"
    bare.mkdir()  # no tokenizer.json: the built-in vocabulary
    assert json.loads(tt.run(gptoss_bin, ["tokenize", "--model", str(bare), "--special", text])) == got
    ids = enc.encode_ordinary(tt.PROSE + tt.SCRIPTS[3])
    assert tt.run(gptoss_bin, ["detokenize", "--vocab", str(path), *map(str, ids)]) == enc.decode_bytes(ids)


def small_tokenizer_json():
    """A valid byte-level BPE tokenizer.json with 256 byte tokens and a few merges."""
    from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE
    from transformers.convert_slow_tokenizer import bytes_to_unicode
    sys.path.insert(0, str(tt_root() / "tools"))
    import make_tokenizer_json

    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    merges = [("h", "e"), ("l", "l"), ("he", "ll"), ("Ġ", "w")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tok = Tokenizer(BPE(vocab, merges, fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(make_tokenizer_json.O200K_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    return json.loads(tok.to_str()), tok


def tt_root():
    import pathlib
    return pathlib.Path(__file__).resolve().parents[2]


def test_small_tokenizer_json_matches_hf(gptoss_bin, tmp_path):
    j, hf = small_tokenizer_json()
    p = tmp_path / "small.json"
    p.write_text(json.dumps(j))
    texts = ["hello world", "hell wow", "hehehe llll", "xyz", "héllo wörld 123"]
    got = tt.tokenize_batch(gptoss_bin, texts, ["--vocab", str(p)])
    assert got == [hf.encode(t).ids for t in texts]


@pytest.mark.parametrize("mutate,expect", [
    (lambda s: s[: len(s) // 2], "line 1, column"),
    (lambda s: s.replace('"type": "BPE"', '"type": "WordPiece"', 1), "model.type"),
    (lambda s: s.replace('"\\u0120w": 259', '"\\u4e2d": 259', 1), 'model.vocab["中"]: U+4E2D'),
    (lambda s: s.replace('"\\u0120w": 259', '"\\u0120w": 9999', 1), "out of range"),
    (lambda s: s.replace('"\\u0120w": 259', '"\\u0120w": "x"', 1), "non-negative integer"),
    (lambda s: s.replace("\\\\p{N}{1,3}", "\\\\d{1,3}", 1), "pre_tokenizer.pretokenizers[0].pattern.Regex"),
    (lambda s: s.replace('"model":', '"modelx":', 1), "model: missing"),
])
def test_malformed_tokenizer_json_errors(gptoss_bin, tmp_path, mutate, expect):
    j, _ = small_tokenizer_json()
    text = json.dumps(j, indent=None)
    bad = mutate(text)
    assert bad != text
    p = tmp_path / "tokenizer.json"
    p.write_text(bad)
    r = subprocess.run([gptoss_bin, "tokenize", "--vocab", str(p), "x"], capture_output=True)
    assert r.returncode == 1, r.stdout
    msg = r.stderr.decode()
    assert str(p) in msg and expect in msg, msg
