"""gptoss tokenize / detokenize against tiktoken's o200k_harmony built from the repo's rank file.

Every id must be identical, for a varied corpus: prose, code, many scripts, emoji, combining
marks, long runs, random Unicode and random bytes; decode and streaming decode must match
tiktoken's bytes and Python's UTF-8 decoder.
"""
import codecs
import hashlib
import json
import os
import random
import shutil
import subprocess

import pytest

RANKS_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"


@pytest.fixture(scope="session")
def enc(root, tmp_path_factory):
    """tiktoken's own o200k_harmony, loaded offline from tests/data (its download cache layout)."""
    cache = tmp_path_factory.mktemp("tiktoken_cache")
    shutil.copy(root / "tests/data/o200k_base.tiktoken", cache / hashlib.sha1(RANKS_URL.encode()).hexdigest())
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    import tiktoken

    return tiktoken.get_encoding("o200k_harmony")


def run(gptoss_bin, args, stdin=b""):
    p = subprocess.run([gptoss_bin, *args], input=stdin, capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p.stdout


def tokenize_batch(gptoss_bin, items, extra=()):
    """items: str or bytes; returns one id list per item (one process for all)."""
    lines = []
    for it in items:
        if isinstance(it, bytes):
            lines.append(json.dumps({"hex": it.hex()}))
        else:
            lines.append(json.dumps(it))
    out = run(gptoss_bin, ["tokenize", "--jsonl", *extra], ("\n".join(lines) + "\n").encode())
    res = [json.loads(l) for l in out.decode().split("\n") if l]
    assert len(res) == len(items)
    return res


PROSE = (
    "The quick brown fox jumps over the lazy dog. It's a well-known pangram; we'll use it, "
    "and they've said you'd like it. I'M SHOUTING, DON'T you see? Mr. O'Neil's cat isn't here.\n\n"
    "In 1969, Apollo 11 landed on the Moon — about 384,400 km away — at 20:17:40 UTC.\r\n"
    "Prices: $3.50, €12, ¥1000, 3.14159265358979, 1e-9, 0x7fff_ffff, 1,234,567.89.\n"
)
CODE = '''#include <stdio.h>
int main(int argc, char** argv) {
    for (int i = 0; i < argc; ++i) { printf("%d: %s\\n", i, argv[i]); }
    return 0;  // done
}
def f(x: list[int]) -> dict[str, int]:
\treturn {str(k): v ** 2 for k, v in enumerate(x) if v != 0}
const re = /^(?:[a-z0-9!#$%&'*+/=?^_`{|}~-]+)@example\\.com$/i;
SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name HAVING COUNT(*) > 1;
    <div class="a b"><span>&nbsp;&lt;tag&gt;</span></div>
'''
SCRIPTS = [
    "中文分词测试：今天天气很好，我们去公园散步吧。人工智能正在改变世界。",
    "日本語のテキスト、カタカナとひらがな、そして漢字。東京タワーは３３３メートルです。",
    "한국어 문장입니다. 안녕하세요, 반갑습니다!",
    "مرحبا بالعالم! هذه جملة باللغة العربية مع أرقام ١٢٣٤٥٦ و 7890.",
    "नमस्ते दुनिया। यह हिंदी में एक वाक्य है, जिसमें संयुक्ताक्षर क्ष त्र ज्ञ हैं।",
    "Привет, мир! Съешь же ещё этих мягких французских булок.",
    "Γειά σου κόσμε· ΑΒΓΔ αβγδ ς σ Σ.",
    "עברית: שלום עולם, 123.",
    "ภาษาไทยไม่มีช่องว่างระหว่างคำ",
    "Tiếng Việt có dấu: Phở bò, người, được.",
    "emoji: 👩‍👩‍👧‍👦 👍🏽 🏳️‍🌈 🇯🇵🇺🇸 ❤️‍🔥 😀😃😄 1️⃣ #️⃣",
    "combining: e\u0301 a\u0308 o\u0302\u0323 Z\u0351\u0352\u0353\u0354 \u0915\u094d\u0937 n\u0303\u0303\u0303",
    "mixed: hello世界مرحباनमस्ते123abc ABCdef DEFghi xyzXYZ ǅungla ᾈ Ǆ",
    "case: HELLOworld helloWORLD HeLLo 'S 'T 'RE 'VE 'M 'LL 'D 's't're've'm'll'd",
    "ws: a\u00a0b\u2003c\u3000d\u180ee\u200bf\u2028g\u2029h\u0085i\u000bj\u000ck\u1680l\u202fm\u205fn",
    "digits: ١٢٣ ۱۲۳ ४५६ ０１２ ⅠⅡⅢ ①②③ ½¾ 𝟘𝟙𝟚 12345678901234567890",
]
RUNS = [
    " " * 1000, "\n" * 500, "\r\n" * 300, "\t" * 64, "1" * 1000, "a" * 10000, "ab" * 3000,
    " " * 7 + "x", "x" + " " * 7, "  \n  \n\n \t x", "!" * 500, "é" * 2000, "中" * 1000,
    "a\n\n\n  b", "     \n", " " * 100 + "\n" * 3 + " " * 100, "🎉" * 200, "0" * 999 + "1",
]


def random_unicode(rng, n):
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.3:
            cp = rng.randrange(0x20, 0x80)
        elif r < 0.4:
            cp = rng.choice([0x20, 0x0A, 0x0D, 0x09, 0xA0, 0x3000, 0x2028, 0x85])
        elif r < 0.8:
            cp = rng.randrange(0x80, 0x10000)
        else:
            cp = rng.randrange(0x10000, 0x110000)
        if 0xD800 <= cp < 0xE000:
            cp = 0xFFFD
        out.append(chr(cp))
    return "".join(out)


def corpus():
    rng = random.Random(1234)
    items = [PROSE, CODE, *SCRIPTS, *RUNS, PROSE + CODE + "".join(SCRIPTS)]
    items += [random_unicode(rng, rng.randrange(1, 200)) for _ in range(1500)]
    # Random mixes of the pieces above: boundaries between scripts, spaces and digits.
    pool = [w for s in [PROSE, CODE, *SCRIPTS] for w in s.split(" ")] + [" ", "  ", "\n", "123", "'s"]
    items += ["".join(rng.choice(pool) + rng.choice(["", " ", "\n", "  "]) for _ in range(rng.randrange(1, 40)))
              for _ in range(1000)]
    return items


def test_corpus_ids_match_tiktoken(gptoss_bin, enc):
    items = corpus()
    got = tokenize_batch(gptoss_bin, items)
    bad = [(t, g, enc.encode_ordinary(t)) for t, g in zip(items, got) if g != enc.encode_ordinary(t)]
    assert not bad, f"{len(bad)} of {len(items)} differ; first: {bad[0]!r}"


def test_special_tokens_only_with_flag(gptoss_bin, enc):
    items = ["<|start|>user<|message|>Hi<|end|>", "<|start|>assistant<|channel|>final<|message|>x<|return|>",
             "a<|call|>b<|constrain|>json<|reserved_200017|>", "<|endofprompt|><|endoftext|><|startoftext|>",
             "<|<|start|>|>", "<|nope|><|start|", "x <|reserved_201087|> y", PROSE + "<|end|>" + CODE]
    plain = tokenize_batch(gptoss_bin, items)
    special = tokenize_batch(gptoss_bin, items, ["--special"])
    for t, p, s in zip(items, plain, special):
        assert p == enc.encode_ordinary(t), t
        assert s == enc.encode(t, allowed_special="all"), t
    assert not any(i >= 199998 for p in plain for i in p)


def test_single_text_argument_and_file(gptoss_bin, enc, tmp_path):
    text = SCRIPTS[0] + PROSE
    assert json.loads(run(gptoss_bin, ["tokenize", text])) == enc.encode_ordinary(text)
    f = tmp_path / "in.txt"
    f.write_text(CODE, encoding="utf-8")
    assert json.loads(run(gptoss_bin, ["tokenize", "--file", str(f)])) == enc.encode_ordinary(CODE)
    assert json.loads(run(gptoss_bin, ["tokenize", "--vocab", "tests/data/o200k_base.tiktoken", text])) == \
        enc.encode_ordinary(text)


def py_str_of_bytes(b):
    """How a Python program would hand bytes to tiktoken: WTF-8 surrogates as surrogates (tiktoken
    then replaces them), every other invalid sequence as U+FFFD (maximal subparts)."""
    def handler(e):
        chunk = e.object[e.start:e.start + 3]
        if len(chunk) == 3 and chunk[0] == 0xED and 0xA0 <= chunk[1] <= 0xBF and 0x80 <= chunk[2] <= 0xBF:
            return chr(0xD000 | ((chunk[1] & 0x3F) << 6) | (chunk[2] & 0x3F)), e.start + 3
        return codecs.replace_errors(e)
    codecs.register_error("gptoss_test_wtf8", handler)
    return b.decode("utf-8", "gptoss_test_wtf8")


def test_invalid_utf8_and_surrogates_like_tiktoken(gptoss_bin, enc):
    rng = random.Random(99)
    items = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))) for _ in range(1500)]
    # Valid text with invalid bytes spliced in, and surrogates (lone and paired) as WTF-8.
    for _ in range(300):
        s = random_unicode(rng, 30).encode()
        cut = rng.randrange(len(s) + 1)
        items.append(s[:cut] + rng.choice([b"\xff", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80",
                                           b"\xed\xb0\x80", b"\xed\xa0\xbd\xed\xb8\x80", b"\xc0\xaf"]) + s[cut:])
    items += ["a\ud800b".encode("utf-8", "surrogatepass"), "\ud83d\ude00x\udfff".encode("utf-8", "surrogatepass")]
    got = tokenize_batch(gptoss_bin, items)
    for b, g in zip(items, got):
        assert g == enc.encode_ordinary(py_str_of_bytes(b)), b


def detokenize_batch(gptoss_bin, id_lists):
    out = run(gptoss_bin, ["detokenize", "--jsonl"], ("\n".join(json.dumps(x) for x in id_lists) + "\n").encode())
    res = [json.loads(l) for l in out.decode().split("\n") if l]
    assert len(res) == len(id_lists)
    return res


def test_decode_and_stream_match_tiktoken(gptoss_bin, enc):
    rng = random.Random(7)
    id_lists = [enc.encode_ordinary(t) for t in [PROSE, CODE, *SCRIPTS, *RUNS[:5]]]
    id_lists += [[rng.randrange(199998) for _ in range(rng.randrange(1, 50))] for _ in range(500)]
    id_lists += [[rng.choice([200006, 200005, 200008, 200007, 200012, 200002, 201087]) if rng.random() < 0.2
                  else rng.randrange(199998) for _ in range(20)] for _ in range(100)]
    got = detokenize_batch(gptoss_bin, id_lists)
    for ids, g in zip(id_lists, got):
        raw = enc.decode_bytes(ids)
        assert bytes.fromhex(g["hex"]) == raw, ids
        # Streaming: Python's incremental decoder fed one token at a time.
        dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        want = [dec.decode(enc.decode_single_token_bytes(i)) for i in ids] + [dec.decode(b"", final=True)]
        assert g["stream"] == want, ids
        assert "".join(g["stream"]) == raw.decode("utf-8", errors="replace")


def test_round_trip(gptoss_bin, enc):
    text = PROSE + CODE + "".join(SCRIPTS)
    ids = json.loads(run(gptoss_bin, ["tokenize", text]))
    assert run(gptoss_bin, ["detokenize", *map(str, ids)]).decode() == text
    assert run(gptoss_bin, ["detokenize"], json.dumps(ids).encode()).decode() == text


def test_errors_are_clear(gptoss_bin, tmp_path):
    p = subprocess.run([gptoss_bin, "detokenize", "1428", "300000"], capture_output=True)
    assert p.returncode == 1 and b"300000" in p.stderr
    bad = tmp_path / "bad.tiktoken"
    bad.write_bytes(b"QQ== 0\nQg== 1\nnot-base64 2\n")
    p = subprocess.run([gptoss_bin, "tokenize", "--vocab", str(bad), "x"], capture_output=True)
    assert p.returncode == 1 and f"{bad}:3".encode() in p.stderr, p.stderr
    p = subprocess.run([gptoss_bin, "tokenize", "--vocab", str(tmp_path / "missing.tiktoken"), "x"], capture_output=True)
    assert p.returncode == 1 and b"missing.tiktoken" in p.stderr


def test_every_code_point_in_context(gptoss_bin, enc):
    """Each code point next to lower/upper letters, digits, spaces, a contraction and punctuation:
    checks the pre-tokenizer's character classes against tiktoken's over all of Unicode."""
    items = []
    chunk = []
    for cp in range(0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        c = chr(cp)
        chunk.append(f"{c}x{c}X{c}1{c} {c}'S{c}\r/){c}{c}")
        if len(chunk) == 256:
            items.append("".join(chunk))
            chunk = []
    items.append("".join(chunk))
    got = tokenize_batch(gptoss_bin, items)
    bad = [i for i, (t, g) in enumerate(zip(items, got)) if g != enc.encode_ordinary(t)]
    assert not bad, f"{len(bad)} chunks differ, first at code point ~{bad[0] * 256:#x}"
