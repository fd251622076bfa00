"""Harmony parsing against the openai-harmony package (the reference StreamableParser).

`gptoss harmony parse --jsonl` must give exactly the messages openai_harmony's
parse_messages_from_completion_tokens gives (strict mode, same JSON shape) on well-formed
output, report no problem there, and stream deltas that add up to each message's content.
On malformed output (harmony-and-apis.md §5.3), where the reference raises, it must report a
problem and keep the content. Inputs: harmony's golden files, harmony's own renders of random
messages (round trip), a few hundred random completions, and mutated (malformed) completions.
"""

import base64
import json
import random
import subprocess

from cli_util import ROOT, harmony_parse, run_jsonl  # sets TIKTOKEN_ENCODINGS_BASE for openai_harmony

from openai_harmony import (
    Author,
    Conversation,
    Message,
    Role,
)

GOLDEN = ROOT / "tests" / "data" / "harmony"
N_RANDOM = 300
START, END, MESSAGE, CHANNEL, RETURN, CALL = 200006, 200007, 200008, 200005, 200002, 200012
ASSISTANT = 173781


def run_parse(gptoss_bin, items):
    """items: (tokens, role or None). One process for all; one result dict per item."""
    return run_jsonl(gptoss_bin, ["harmony", "parse", "--jsonl"], [{"tokens": t, "role": r} for t, r in items])


def content_text(m):
    c = m["content"]
    return c if isinstance(c, str) else "".join(p.get("text", "") for p in c)


def check_deltas(out):
    assert len(out["deltas"]) == len(out["messages"])
    for pieces, m in zip(out["deltas"], out["messages"]):
        assert "".join(pieces) == content_text(m)


def expected_stop(tokens):
    for t in tokens:
        if t in (RETURN, CALL):
            return "return" if t == RETURN else "call"
    return "eos"


def compare(enc, gptoss_bin, items):
    """Well-formed where harmony accepts: identical messages, no problems."""
    got = run_parse(gptoss_bin, items)
    failures, accepted = [], 0
    for i, ((tokens, role), out) in enumerate(zip(items, got)):
        check_deltas(out)
        assert out["stop"] == expected_stop(tokens)
        want = harmony_parse(enc, tokens, role)
        if want is None:
            if not out["problems"]:
                failures.append(f"item {i}: harmony raises, we report nothing: {enc.decode(tokens)!r}")
            continue
        accepted += 1
        if out["messages"] != want or out["problems"]:
            failures.append(f"item {i}: {enc.decode(tokens)!r}\n want {want}\n got  {out['messages']}"
                            f"\n problems {out['problems']}")
    assert not failures, f"{len(failures)} of {len(items)} differ:\n" + "\n".join(failures[:5])
    return accepted


# ---------------------------------------------------------------- golden files

def test_golden_token_files(enc, gptoss_bin):
    items = []
    for name in ("test_simple_reasoning_response.txt", "test_simple_tool_call.txt"):
        ids = [int(x) for x in (GOLDEN / name).read_text().split()]
        items.append((ids, "assistant"))
    text = (GOLDEN / "test_streamable_parser.txt").read_text(encoding="utf-8").rstrip()
    items.append((enc.encode(text, allowed_special="all"), "assistant"))
    text = (GOLDEN / "test_tool_response_parsing.txt").read_text(encoding="utf-8").rstrip()
    items.append((enc.encode(text, allowed_special="all"), None))
    assert compare(enc, gptoss_bin, items) == len(items)
    out = run_parse(gptoss_bin, items)
    assert [m.get("recipient") for m in out[2]["messages"]] == [None, "browser.search", "assistant"]
    assert out[3]["messages"][0]["name"] == "browser.search"


def test_cli_forms(enc, gptoss_bin, tmp_path):
    ids = [int(x) for x in (GOLDEN / "test_simple_tool_call.txt").read_text().split()]
    want = harmony_parse(enc, ids, "assistant")
    f = tmp_path / "ids.txt"
    f.write_text((GOLDEN / "test_simple_tool_call.txt").read_text())
    for args in (["--file", str(f)], [str(i) for i in ids]):
        r = subprocess.run([gptoss_bin, "harmony", "parse", *args], capture_output=True, text=True, check=True)
        assert json.loads(r.stdout) == want
    f.write_text(json.dumps(ids))
    r = subprocess.run([gptoss_bin, "harmony", "parse", "--file", str(f)], capture_output=True, text=True, check=True)
    assert json.loads(r.stdout) == want
    r = subprocess.run([gptoss_bin, "harmony", "parse", "--events", "--text",
                        "<|channel|>final<|message|>Hi!<|return|>"], capture_output=True, text=True, check=True)
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert [e["event"] for e in events][0] == "message_start"
    assert events[0]["header"] == {"role": "assistant", "channel": "final"}
    assert events[-1] == {"event": "stop", "reason": "return"}
    for bad in (["parse"], ["parse", "12", "x"], ["render"], ["frobnicate"], ["parse", "--role", "robot", "1"]):
        r = subprocess.run([gptoss_bin, "harmony", *bad], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           timeout=10)
        assert r.returncode == 2 and r.stderr, bad
    r = subprocess.run([gptoss_bin, "harmony", "parse", "--file", "-"], input="200005 17196 200008 17",
                       capture_output=True, text=True, check=True)
    assert json.loads(r.stdout) == [{"role": "assistant", "content": "2", "channel": "final"}]
    r = subprocess.run([gptoss_bin, "harmony", "parse", "--text", "I refuse.<|end|>"], capture_output=True, text=True)
    assert r.returncode == 0 and "warning" in r.stderr and json.loads(r.stdout)[0]["content"] == "I refuse."


# ---------------------------------------------------------------- round trip

WORDS = ["the", "weather", "is", "Paris", "42", "  spaced  ", "\n", "tab\there", "émoji 😀", "日本語",
         'quote"s', "back\\slash", "to=x", "{", "}", "[1, 2]", "// c", "\r\n", "Ωmega", "ok.", "?", "   ",
         "a-b_c.d", "\u3010ref\u3011", "<|start|>", "<|channel|>"]
PLAIN = [w for w in WORDS if "<|" not in w]


def rtext(rng, words=WORDS, lo=0, hi=10):
    return "".join(rng.choice(words) + rng.choice(["", " "]) for _ in range(rng.randint(lo, hi)))


def rmessage(rng):
    kind = rng.choice(["analysis", "final", "preamble", "call", "builtin", "tool"])
    if kind == "tool":
        m = Message.from_author_and_content(Author.new(Role.TOOL, rng.choice(["functions.f", "browser.search", "python"])),
                                            rtext(rng))
        return m.with_recipient("assistant").with_channel(rng.choice(["commentary", "analysis"]))
    m = Message.from_role_and_content(Role.ASSISTANT, rtext(rng))
    if kind == "call":
        m = m.with_channel("commentary").with_recipient("functions." + rng.choice(["get_weather", "f", "do_it"]))
        ct = rng.choice(["<|constrain|>json", "json", "code", None])
        return m.with_content_type(ct) if ct else m
    if kind == "builtin":
        return m.with_channel(rng.choice(["analysis", "commentary"])).with_recipient(
            rng.choice(["browser.search", "python"]))
    return m.with_channel({"analysis": "analysis", "final": "final", "preamble": "commentary"}[kind])


def test_round_trip_of_harmony_renders(enc, gptoss_bin):
    """Harmony renders a message; both parsers read it back; it is the message again."""
    rng = random.Random(7)
    msgs = [rmessage(rng) for _ in range(150)]
    items = [(enc.render(m), None) for m in msgs]
    # Completions: assistant messages rendered as history, minus the prompt's <|start|>assistant.
    convs = []
    for _ in range(100):
        conv = [rmessage(rng) for _ in range(rng.randint(1, 4))]
        conv[0] = Message.from_role_and_content(Role.ASSISTANT, rtext(rng)).with_channel(rng.choice(["analysis", "final"]))
        ids = enc.render_conversation(Conversation.from_messages(conv))
        ids = ids[2:] if rng.random() < 0.5 else ids[1:]  # with or without the leading "assistant"
        convs.append(conv)
        items.append((ids, "assistant"))
    assert compare(enc, gptoss_bin, items) == len(items)
    out = run_parse(gptoss_bin, items[:len(msgs)])
    for m, o in zip(msgs, out):
        [got] = o["messages"]
        assert Message.from_dict(got) == m


# ---------------------------------------------------------------- random completions

def header(rng, channel, recipient, ctype):
    ct = ""
    if ctype == "constrain":
        ct = rng.choice([" <|constrain|>json", "<|constrain|>json"]) if recipient else ""
    elif ctype:
        ct = " " + ctype
    if recipient and rng.random() < 0.5:
        return f" to={recipient}<|channel|>{channel}{ct}"
    if recipient:
        return f"<|channel|>{channel} to={recipient}{ct}"
    return f"<|channel|>{channel}"


def rcompletion(rng):
    """A well-formed completion (text), as the model writes it after `<|start|>assistant`."""
    parts = []
    for i in range(rng.randint(1, 4)):
        kind = rng.choice(["analysis", "final", "preamble", "call", "builtin", "tool_result"])
        prefix = "" if i == 0 else "<|start|>assistant"
        body = rtext(rng, PLAIN)
        if kind == "tool_result" and i > 0:
            parts.append(f"<|start|>functions.f to=assistant<|channel|>commentary<|message|>{body}<|end|>")
            continue
        if kind in ("call", "builtin"):
            rec = "functions.get_weather" if kind == "call" else rng.choice(["browser.search", "python"])
            ch = "commentary" if kind == "call" else rng.choice(["analysis", "commentary"])
            h = header(rng, ch, rec, rng.choice(["constrain", "json", "code", None]))
            parts.append(f"{prefix}{h}<|message|>{body}<|call|>")
        else:
            ch = {"analysis": "analysis", "final": "final", "preamble": "commentary", "tool_result": "analysis"}[kind]
            term = rng.choice(["<|return|>", "<|end|>"]) if ch == "final" else "<|end|>"
            parts.append(f"{prefix}{header(rng, ch, None, None)}<|message|>{body}{term}")
    return "".join(parts)


def test_random_completions(enc, gptoss_bin):
    rng = random.Random(20250806)
    items = []
    for _ in range(N_RANDOM):
        ids = enc.encode(rcompletion(rng), allowed_special="all")
        if rng.random() < 0.3:
            ids = ids[:rng.randint(1, len(ids))]  # max_tokens: cut anywhere, even inside a character
        items.append((ids, "assistant"))
    accepted = compare(enc, gptoss_bin, items)
    assert accepted >= N_RANDOM * 0.6  # most are well-formed; truncated headers are not


# ---------------------------------------------------------------- malformed streams

MUTATIONS = ["drop_message", "drop_start", "drop_start_role", "cut_in_header", "text_after_end", "refusal",
             "empty_channel", "extra_header_word", "bad_role"]


def malformed(rng, mutation):
    """(text, contents that must survive) for one kind of malformed completion."""
    a, b = rtext(rng, PLAIN, 1, 8).strip() or "alpha", rtext(rng, PLAIN, 1, 8).strip() or "beta"
    first = f"<|channel|>analysis<|message|>{a}<|end|>"
    if mutation == "drop_message":
        return first + f"<|start|>assistant<|channel|>final {b}<|return|>", [a, b]
    if mutation == "drop_start":
        return first + f"assistant<|channel|>final<|message|>{b}<|return|>", [a, b]
    if mutation == "drop_start_role":
        return first + f"<|channel|>final<|message|>{b}<|return|>", [a, b]
    if mutation == "cut_in_header":
        return first + "<|start|>assistant<|channel|>fin", [a]
    if mutation == "text_after_end":
        return first + f"{b}<|end|>", [a, b]
    if mutation == "refusal":
        return f"{b}<|end|>", [b]
    if mutation == "empty_channel":
        return first + f"<|start|>assistant<|channel|><|message|>{b}<|end|>", [a, b]
    if mutation == "extra_header_word":
        return first + f"<|start|>assistant<|channel|>commentary to=functions.f extra json<|message|>{b}<|call|>", [a, b]
    return first + f"<|start|>robot<|message|>{b}<|end|>", [a, b]


def test_malformed_streams_report_and_keep_content(enc, gptoss_bin):
    rng = random.Random(99)
    cases = [(m, *malformed(rng, m)) for _ in range(12) for m in MUTATIONS]
    items = [(enc.encode(text, allowed_special="all"), "assistant") for _, text, _ in cases]
    out = run_parse(gptoss_bin, items)
    for (mutation, text, keep), (ids, role), o in zip(cases, items, out):
        assert harmony_parse(enc, ids, role) is None, f"harmony accepts {text!r}"  # the oracle calls it malformed
        assert o["problems"], f"{mutation}: no problem reported for {text!r}"
        check_deltas(o)
        everything = "\n".join(content_text(m) for m in o["messages"])
        for s in keep:
            assert s in everything, f"{mutation}: lost {s!r} from {text!r}: {o['messages']}"


def test_known_reference_misparses_are_fixed(enc, gptoss_bin):
    """Cases harmony v0.0.8 accepts but gets wrong (harmony-and-apis.md §5.2): we report and fix."""
    lone = enc.encode("<|channel|>final <|constrain|>json<|message|>{}<|return|>", allowed_special="all")
    repeated = enc.encode("<|channel|>commentary to=functions.bash<|channel|>commentary <|constrain|>json"
                          "<|message|>{}<|call|>", allowed_special="all")
    assert harmony_parse(enc, lone, "assistant")[0]["recipient"] == "<|constrain|>json"  # PR #144
    assert harmony_parse(enc, repeated, "assistant")[0]["recipient"] == "functions.bash<|channel|>commentary"
    o1, o2 = run_parse(gptoss_bin, [(lone, "assistant"), (repeated, "assistant")])
    assert o1["messages"] == [{"role": "assistant", "content": "{}", "channel": "final",
                               "content_type": "<|constrain|>json"}]
    assert o2["messages"][0]["recipient"] == "functions.bash" and o2["problems"]


def test_streaming_deltas_match_reference_token_by_token(enc, gptoss_bin):
    """Per token, the text each parser releases is the same (whole characters only)."""
    from openai_harmony import StreamableParser

    rng = random.Random(31337)
    items = []
    for _ in range(60):
        ids = enc.encode(rcompletion(rng), allowed_special="all")
        items.append((ids[:rng.randint(1, len(ids))] if rng.random() < 0.3 else ids, "assistant"))
    out = run_parse(gptoss_bin, items)
    compared = 0
    for (ids, _), o in zip(items, out):
        parser = StreamableParser(enc, Role.ASSISTANT)
        per_message, cur, n_done = [], [], 0
        try:
            for t in ids:
                parser.process(t)
                if len(parser.messages) > n_done:  # a message closed on this token
                    per_message.append(cur)
                    cur, n_done = [], len(parser.messages)
                elif parser.last_content_delta:
                    cur.append(parser.last_content_delta)
            parser.process_eos()
        except Exception:
            continue
        if len(parser.messages) > n_done:
            per_message.append(cur)
        # at EOS the reference flushes leftover bytes into the content without a delta
        if o["deltas"] and per_message and "".join(per_message[-1]) != content_text(o["messages"][-1]):
            continue
        assert o["deltas"] == per_message
        compared += 1
    assert compared >= 40


def byte_token_ids():
    """The o200k rank of every single byte (the vocabulary is byte-level), from the rank file."""
    ranks = {}
    for line in (ROOT / "tests" / "data" / "o200k_base.tiktoken").read_text().split("\n"):
        if line:
            b64, rank = line.split()
            raw = base64.b64decode(b64)
            if len(raw) == 1:
                ranks[raw[0]] = int(rank)
    assert len(ranks) == 256
    return ranks


def test_invalid_utf8_reads_like_python_decode_replace(enc, gptoss_bin):
    """Text made of single-byte tokens, valid UTF-8 or not, reads as bytes.decode("utf-8", "replace")
    does (one U+FFFD per maximal invalid subpart, a character cut off by the end of the stream
    included), in the message and in its deltas; an invalid header is a problem, read the same way."""
    byte_id = byte_token_ids()
    head = enc.encode("<|channel|>final<|message|>", allowed_special="all")
    pieces = [b"a", b" ", "\u00e9".encode(), "\u65e5".encode(), "\U0001F600".encode(), b"\x80", b"\xbf", b"\xc3",
              b"\xe6\x97", b"\xf0\x9f\x98", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xff", b"\xc0\xaf", b"\xe0\x80"]
    rng = random.Random(8)
    raws, items = [], []
    for i in range(300):
        raw = b"x" + b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        raws.append(raw)
        ids = head + [byte_id[b] for b in raw] + ([RETURN] if i % 2 else [])  # odd: EOS ends the text
        items.append((ids, "assistant"))
    out = run_parse(gptoss_bin, items)
    for raw, o in zip(raws, out):
        check_deltas(o)
        assert [content_text(m) for m in o["messages"]] == [raw.decode("utf-8", "replace")], raw
        assert not o["problems"], raw
    channel = b"fin\xffal\xe6\x97"
    ids = [CHANNEL] + [byte_id[b] for b in channel] + enc.encode("<|message|>ok<|return|>", allowed_special="all")
    [o] = run_parse(gptoss_bin, [(ids, "assistant")])
    assert o["messages"][0]["channel"] == channel.decode("utf-8", "replace")
    assert any("not valid UTF-8" in p for p in o["problems"]), o["problems"]


def test_stop_tokens_are_harmonys(enc):
    """The parser's stop reasons (and parser.h kAssistantStopTokens) use harmony's stop set."""
    assert set(enc.stop_tokens_for_assistant_actions()) == {RETURN, CALL}
    assert set(enc.stop_tokens()) == {RETURN, CALL, END}
    src = (ROOT / "src" / "harmony" / "parser.h").read_text()
    assert "kAssistantStopTokens[] = {200002 /*<|return|>*/, 200012 /*<|call|>*/}" in src
