"""`gptoss generate` driving the real binary on tiny random checkpoints.

Oracles: openai-harmony renders the prompt we must build and parses the completion tokens we
report (--json exposes both); `gptoss logits` (the exact forward pass, itself checked against
transformers) gives the argmax that greedy generation must follow token by token. Random weights
never produce well-formed Harmony, so UI paths that need it (channels, tool calls) use
--force-prefix, a documented prefill of the answer's first tokens.
"""
import json
import subprocess

import numpy as np
import pytest
from safetensors.numpy import load_file

from cli_util import (CALL_PREFIX, DATE, ROOT, WEATHER_TOOLS, harmony_encoding, harmony_parse,
                      make_tiny_model, render_for_completion, run, system_message,
                      weather_developer_message)


@pytest.fixture(scope="session")
def model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("gen-model"))


def gen_json(gptoss_bin, model, *args):
    r = run(gptoss_bin, "generate", model, "--json", "--current-date", DATE, "--threads", "2", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_prompt_is_harmonys_render(gptoss_bin, model, enc):
    from openai_harmony import DeveloperContent, Message, Role
    out = gen_json(gptoss_bin, model, "-p", "What is 2+2?", "-n", "2", "--seed", "1")
    assert out["prompt_ids"] == render_for_completion(
        enc, [system_message(), Message.from_role_and_content(Role.USER, "What is 2+2?")])
    out = gen_json(gptoss_bin, model, "-p", "Hi", "-n", "2", "--reasoning", "high", "--system", "You are terse.",
                   "--developer", "Answer in French.")
    dev = Message.from_role_and_content(Role.DEVELOPER, DeveloperContent.new().with_instructions("Answer in French."))
    assert out["prompt_ids"] == render_for_completion(
        enc, [system_message("high", "You are terse."), dev, Message.from_role_and_content(Role.USER, "Hi")])
    assert out["usage"]["prompt_tokens"] == len(out["prompt_ids"])
    assert out["usage"]["completion_tokens"] == len(out["completion_ids"]) == 2
    assert out["finish_reason"] == "length"


def test_current_date_defaults_to_today_utc(gptoss_bin, model, enc):
    import datetime

    from openai_harmony import Message, ReasoningEffort, Role, SystemContent
    r = run(gptoss_bin, "generate", model, "--json", "--threads", "2", "-p", "Hi", "-n", "1")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)["prompt_ids"]
    # Around midnight UTC the date may turn between the call and now: either day is right.
    now = datetime.datetime.now(datetime.timezone.utc)
    days = {(now - datetime.timedelta(minutes=m)).date().isoformat() for m in (0, 5)}
    want = [render_for_completion(enc, [
        Message.from_role_and_content(Role.SYSTEM, SystemContent.new().with_reasoning_effort(ReasoningEffort.MEDIUM)
                                      .with_conversation_start_date(d)),
        Message.from_role_and_content(Role.USER, "Hi")]) for d in sorted(days)]
    assert got in want


def test_same_seed_same_output_different_seed_differs(gptoss_bin, model):
    args = ("-p", "Tell me a story", "-n", "12", "--temperature", "1.0")
    a = gen_json(gptoss_bin, model, *args, "--seed", "42")
    b = gen_json(gptoss_bin, model, *args, "--seed", "42")
    c = gen_json(gptoss_bin, model, *args, "--seed", "43")
    assert a["completion_ids"] == b["completion_ids"]
    assert a["messages"] == b["messages"]
    assert a["completion_ids"] != c["completion_ids"]
    # The streamed text equals the parsed content (final channel to stdout, nothing else there).
    r = run(gptoss_bin, "generate", model, *args, "--seed", "42", "--current-date", DATE,
            "--force-prefix", "<|channel|>final<|message|>")
    assert r.returncode == 0, r.stderr
    d = gen_json(gptoss_bin, model, *args, "--seed", "42", "--force-prefix", "<|channel|>final<|message|>")
    finals = [m for m in d["messages"] if m.get("channel") == "final"]
    if not d.get("problems") and finals:
        assert r.stdout == "".join(m["content"] if isinstance(m["content"], str) else m["content"][0]["text"]
                                   for m in finals) + "\n"


def test_json_messages_equal_openai_harmony_parse(gptoss_bin, model, enc):
    compared = 0
    for seed in range(8):
        out = gen_json(gptoss_bin, model, "-p", "hello", "-n", "10", "--seed", str(seed),
                       "--force-prefix", "<|channel|>analysis<|message|>")
        ref = harmony_parse(enc, out["completion_ids"])
        if ref is None:  # random tokens made malformed Harmony: we must say so
            assert out.get("problems")
            continue
        assert out["messages"] == ref
        compared += 1
    assert compared >= 4


def test_forced_well_formed_answer(gptoss_bin, model, enc):
    prefix = ("<|channel|>analysis<|message|>User greets. Reply.<|end|><|start|>assistant<|channel|>final"
              "<|message|>Hello there!<|return|>")
    out = gen_json(gptoss_bin, model, "-p", "hi", "--force-prefix", prefix)
    assert out["finish_reason"] == "stop"
    assert out["messages"] == harmony_parse(enc, out["completion_ids"])
    assert [m["channel"] for m in out["messages"]] == ["analysis", "final"]
    r = run(gptoss_bin, "generate", model, "-p", "hi", "--force-prefix", prefix)
    assert r.returncode == 0
    assert r.stdout == "Hello there!\n"
    assert "User greets. Reply." in r.stderr
    r = run(gptoss_bin, "generate", model, "-p", "hi", "--force-prefix", prefix, "--hide-reasoning")
    assert r.stdout == "Hello there!\n" and "User greets" not in r.stderr


def test_greedy_raw_equals_argmax_of_logits(gptoss_bin, model, tmp_path):
    out = gen_json(gptoss_bin, model, "--raw", "-p", "The capital of France is", "-n", "8", "--temperature", "0")
    prompt, completion = out["prompt_ids"], out["completion_ids"]
    assert len(completion) == 8 and out["finish_reason"] == "length"
    ids = prompt + completion
    f = tmp_path / "logits.safetensors"
    r = run(gptoss_bin, "logits", model, "--tokens", ",".join(map(str, ids)), "--out", f)
    assert r.returncode == 0, r.stderr
    logits = load_file(str(f))["logits_0"]
    for i, tok in enumerate(completion):
        row = logits[len(prompt) - 1 + i]
        top2 = np.sort(row)[-2:]
        if top2[1] - top2[0] < 1e-4:
            continue  # a near-tie: either token is a correct argmax
        assert int(np.argmax(row)) == tok, f"step {i}"
    # The raw text is the decoded completion (openai-harmony's decoder as the oracle).
    enc = harmony_encoding()
    assert out["text"] == enc.decode(completion)


def test_tool_call_round_trip_with_tool_cmd(gptoss_bin, model, enc, tmp_path):
    from openai_harmony import Author, Message, Role
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps(WEATHER_TOOLS))
    cmd = "python3 -c 'import json,sys; a=json.load(sys.stdin); print(json.dumps({\"city\": a[\"city\"], \"temp\": 21}))'"
    out = gen_json(gptoss_bin, model, "-p", "Weather in Paris?", "-n", "40", "--seed", "3", "--tools", tools,
                   "--tool-cmd", cmd, "--force-prefix", CALL_PREFIX)
    assert len(out["steps"]) == 2
    call = out["messages"][0]
    assert call["recipient"] == "functions.get_weather" and call["channel"] == "commentary"
    assert call["content_type"] == "<|constrain|>json" and call["content"] == '{"city":"Paris"}'
    assert out["messages"][1]["role"] == "tool" and out["messages"][1]["name"] == "functions.get_weather"
    user = Message.from_role_and_content(Role.USER, "Weather in Paris?")
    assert out["steps"][0]["prompt_ids"] == render_for_completion(
        enc, [system_message(), weather_developer_message(), user])
    call_msg = (Message.from_role_and_content(Role.ASSISTANT, '{"city":"Paris"}').with_channel("commentary")
                .with_recipient("functions.get_weather").with_content_type("<|constrain|>json"))
    tool_msg = (Message.from_author_and_content(Author.new(Role.TOOL, "functions.get_weather"),
                                                '{"city": "Paris", "temp": 21}')
                .with_recipient("assistant").with_channel("commentary"))
    assert out["steps"][1]["prompt_ids"] == render_for_completion(
        enc, [system_message(), weather_developer_message(), user, call_msg, tool_msg])
    # Without --tool-cmd, generation ends at the call.
    out = gen_json(gptoss_bin, model, "-p", "Weather?", "--tools", tools, "--force-prefix", CALL_PREFIX)
    assert out["finish_reason"] == "tool_calls" and len(out["steps"]) == 1


def test_verbose_timings(gptoss_bin, model):
    r = run(gptoss_bin, "generate", model, "-p", "hi", "-n", "5", "--verbose", "--seed", "1")
    assert r.returncode == 0, r.stderr
    for label in ("load duration:", "prompt eval count:", "prompt eval rate:", "eval rate:",
                  "time to first token:"):
        assert label in r.stderr
    out = gen_json(gptoss_bin, model, "-p", "hi", "-n", "5", "--seed", "1")
    t = out["timings"]
    assert t["prompt_tokens_per_s"] > 0 and t["generation_tokens_per_s"] > 0 and t["time_to_first_token_ms"] > 0
    assert t["generated_tokens"] == 4


def test_context_limit(gptoss_bin, model):
    # The prompt alone does not fit.
    r = run(gptoss_bin, "generate", model, "-p", "hello " * 40, "--ctx", "32")
    assert r.returncode == 1 and "context" in r.stderr
    # Prompt plus -n does not fit.
    r = run(gptoss_bin, "generate", model, "--raw", "-p", "hello", "-n", "100", "--ctx", "32")
    assert r.returncode == 1 and "exceeds the context length of 32" in r.stderr
    # Without -n, generation runs until the context is full and says so.
    r = run(gptoss_bin, "generate", model, "--raw", "-p", "hello", "--ctx", "24", "--json")
    out = json.loads(r.stdout)
    assert out["finish_reason"] == "context_full"
    assert len(out["prompt_ids"]) + len(out["completion_ids"]) == 24
    assert "context is full" in r.stderr


@pytest.mark.parametrize("args,needle", [
    (["-p", "x", "--bogus"], "unknown option --bogus"),
    (["-p", "x", "--temperature", "-1"], "--temperature"),
    (["-p", "x", "--top-p", "0"], "--top-p"),
    (["-p", "x", "--reasoning", "extreme"], "--reasoning"),
    (["-p", "x", "-n", "0"], "-n"),
    (["-p", "x", "--seed", "abc"], "--seed"),
    ([], "-p PROMPT"),
])
def test_bad_flags(gptoss_bin, model, args, needle):
    r = run(gptoss_bin, "generate", model, *args)
    assert r.returncode == 2 and needle in r.stderr


def test_missing_model(gptoss_bin, tmp_path):
    missing = tmp_path / "no-such-model"
    r = run(gptoss_bin, "generate", missing, "-p", "hi")
    assert r.returncode == 1 and str(missing) in r.stderr and "no such" in r.stderr
    r = run(gptoss_bin, "generate", ROOT / "tests" / "data", "-p", "hi")
    assert r.returncode == 1 and "config.json" in r.stderr


def test_bad_tools_file(gptoss_bin, model, tmp_path):
    f = tmp_path / "tools.json"
    f.write_text('[{"type": "function", "function": {"description": "no name"}}]')
    r = run(gptoss_bin, "generate", model, "-p", "hi", "--tools", f)
    assert r.returncode == 2 and "tools[0]" in r.stderr
    # A non-string "type" is an error message, not an escaped nlohmann type_error (abort).
    f.write_text('[{"type": 1, "function": {"name": "x"}}]')
    r = run(gptoss_bin, "generate", model, "-p", "hi", "--tools", f)
    assert r.returncode == 2 and "tools[0].type must be" in r.stderr, r.stderr


def test_hub_id_is_pulled_then_found_in_the_cache(gptoss_bin, model, tmp_path):
    import os
    import pathlib

    from fake_hub import FakeHub, Repo
    files = {p.name: p.read_bytes() for p in pathlib.Path(model).iterdir()}
    hub = FakeHub().start()
    try:
        hub.add_repo(Repo("acme/tiny-gpt-oss", files))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
        env.update(HOME=str(tmp_path / "home"), HF_HUB_CACHE=str(tmp_path / "cache"), HF_ENDPOINT=hub.endpoint)
        args = [gptoss_bin, "generate", "acme/tiny-gpt-oss", "-p", "hi", "-n", "3", "--seed", "9", "--json",
                "--current-date", DATE]
        # Not cached, no terminal to ask on, no --yes: a clear error, nothing downloaded.
        r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert r.returncode == 1 and "gptoss pull acme/tiny-gpt-oss" in r.stderr
        r = subprocess.run(args + ["--yes"], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        pulled = json.loads(r.stdout)
        # Offline now: found in the cache, same seeded output as from the directory itself.
        env["HF_HUB_OFFLINE"] = "1"
        r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["completion_ids"] == pulled["completion_ids"]
        local = gen_json(gptoss_bin, model, "-p", "hi", "-n", "3", "--seed", "9")
        assert local["completion_ids"] == pulled["completion_ids"]
    finally:
        hub.stop()


PENALTY_PROMPT = "The quick brown fox jumps over the lazy dog while seven wizards quietly hex jovial bankers"


def completion_and_logits(gptoss_bin, model, tmp_path, *args):
    out = gen_json(gptoss_bin, model, "--raw", "-p", PENALTY_PROMPT, "-n", "10", *args)
    prompt, completion = out["prompt_ids"], out["completion_ids"]
    f = tmp_path / "l.safetensors"
    r = run(gptoss_bin, "logits", model, "--tokens", ",".join(map(str, prompt + completion)), "--out", f)
    assert r.returncode == 0, r.stderr
    return prompt, completion, load_file(str(f))["logits_0"]


def assert_greedy_under(prompt, completion, logits, transform):
    checked = 0
    for i, tok in enumerate(completion):
        row = transform(logits[len(prompt) - 1 + i].astype(np.float64), completion[:i])
        top2 = np.sort(row)[-2:]
        if top2[1] - top2[0] < 1e-3:
            continue
        assert int(np.argmax(row)) == tok, f"step {i}"
        checked += 1
    assert checked >= len(completion) // 2


@pytest.mark.parametrize("R,P,F", [(0.05, 0.0, 0.0), (1.0, -2.0, -1.5)])
def test_penalties_follow_their_definitions(gptoss_bin, model, tmp_path, R, P, F):
    """Greedy decoding under penalties equals the argmax of the exact logits after llama.cpp's
    repetition penalty (over prompt and output: positive logits divided, negative multiplied) and
    OpenAI's presence/frequency penalties (over the output: minus p + f * count). Values below
    neutral boost seen tokens, so that they change this random model's choices."""
    prompt, completion, logits = completion_and_logits(
        gptoss_bin, model, tmp_path, "--temperature", "0", "--repeat-penalty", str(R),
        "--presence-penalty", str(P), "--frequency-penalty", str(F))

    def penalise(row, generated):
        for t in set(prompt) | set(generated):
            row[t] = row[t] / R if row[t] > 0 else row[t] * R
        for t in set(generated):
            row[t] -= P + F * generated.count(t)
        return row
    assert_greedy_under(prompt, completion, logits, penalise)
    # Without penalties the same prompt is plain greedy (and differs: the penalties did something).
    _, plain, _ = completion_and_logits(gptoss_bin, model, tmp_path, "--temperature", "0")
    assert plain != completion
    if R != 1.0:
        assert set(completion) & set(prompt)  # the repetition penalty reaches back into the prompt
    else:
        assert len(set(completion)) < len(completion)  # boosted output tokens come back


@pytest.mark.parametrize("flags", [["--top-k", "1"], ["--top-p", "1e-9"], ["--min-p", "1.0"]])
def test_truncation_flags_reach_the_sampler(gptoss_bin, model, tmp_path, flags):
    # At temperature 1, each of these keeps only the most likely token: the output is greedy.
    prompt, completion, logits = completion_and_logits(gptoss_bin, model, tmp_path, "--temperature", "1",
                                                       "--seed", "5", *flags)
    assert_greedy_under(prompt, completion, logits, lambda row, gen: row)
    _, sampled, _ = completion_and_logits(gptoss_bin, model, tmp_path, "--temperature", "1", "--seed", "5")
    assert sampled != completion


def test_weights_file_stands_for_its_folder(gptoss_bin, model):
    a = gen_json(gptoss_bin, model, "-p", "hi", "-n", "4", "--seed", "2")
    b = gen_json(gptoss_bin, model + "/model.safetensors", "-p", "hi", "-n", "4", "--seed", "2")
    assert a["completion_ids"] == b["completion_ids"]
