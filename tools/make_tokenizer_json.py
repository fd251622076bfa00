#!/usr/bin/env python3
"""Writes a Hugging Face tokenizer.json for o200k_harmony from a .tiktoken rank file, the way
gpt-oss checkpoints get theirs: transformers' TikTokenConverter (what GptOssConverter uses) with the
o200k pattern and the 21 special tokens 199998..200018 that the Hub's tokenizer_config.json names.

usage: tools/make_tokenizer_json.py [--ranks tests/data/o200k_base.tiktoken] OUT.json
Needs transformers, tokenizers and tiktoken (no torch).
"""
import argparse
import pathlib

O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

# Ids 199998..200018 in order, as in the gpt-oss tokenizer_config.json.
_NAMED = {
    199998: "<|startoftext|>",
    199999: "<|endoftext|>",
    200002: "<|return|>",
    200003: "<|constrain|>",
    200005: "<|channel|>",
    200006: "<|start|>",
    200007: "<|end|>",
    200008: "<|message|>",
    200012: "<|call|>",
    200018: "<|endofprompt|>",
}
SPECIAL_TOKENS = [_NAMED.get(i, f"<|reserved_{i}|>") for i in range(199998, 200019)]


def build(ranks_path):
    """Returns a tokenizers.Tokenizer converted from the rank file."""
    from transformers.convert_slow_tokenizer import TikTokenConverter

    import inspect

    # Newer transformers name the argument extra_special_tokens; older ones (4.57.6, as llama.cpp's
    # converter venv got) additional_special_tokens.
    params = inspect.signature(TikTokenConverter.__init__).parameters
    key = "extra_special_tokens" if "extra_special_tokens" in params else "additional_special_tokens"
    conv = TikTokenConverter(vocab_file=str(ranks_path), pattern=O200K_PATTERN, **{key: SPECIAL_TOKENS})
    tok = conv.converted()
    for i, s in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(s) == 199998 + i, (s, tok.token_to_id(s))
    return tok


def main():
    root = pathlib.Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", default=str(root / "tests/data/o200k_base.tiktoken"))
    ap.add_argument("out")
    a = ap.parse_args()
    build(a.ranks).save(a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
