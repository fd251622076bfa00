"""Shared helpers for the `gptoss generate`/`run`/`bench`/`harmony` tests: a tiny random checkpoint
with the full 201088-token vocabulary (so that Harmony's special tokens are real rows), openai-harmony
as the oracle for prompts and parsed messages, and a runner for the CLI's --jsonl batch modes."""
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATE = "2026-01-02"
os.environ.setdefault("TIKTOKEN_ENCODINGS_BASE", str(ROOT / "tests" / "data"))

WEATHER_TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Gets the current weather in the provided location.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}]

CALL_PREFIX = ('<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>'
               '{"city":"Paris"}<|call|>')


def make_tiny_model(out_dir):
    out = os.path.join(str(out_dir), "tiny-full-vocab")
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_tiny_checkpoint.py"), "--out", out,
                    "--vocab", "201088", "--seed", "11"], check=True, stdout=subprocess.DEVNULL)
    return out


def harmony_encoding():
    from openai_harmony import HarmonyEncodingName, load_harmony_encoding
    return load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)


def harmony_parse(enc, tokens, role="assistant"):
    """openai-harmony's strict parse as the JSON its Rust side writes; None where it raises."""
    try:
        return json.loads(enc._inner.parse_messages_from_completion_tokens(list(tokens), role, True))
    except Exception:  # the binding raises on malformed output (HarmonyError, RuntimeError, ValueError)
        return None


def system_message(effort="medium", identity=None):
    from openai_harmony import Message, ReasoningEffort, Role, SystemContent
    sc = SystemContent.new().with_reasoning_effort(
        {"low": ReasoningEffort.LOW, "medium": ReasoningEffort.MEDIUM, "high": ReasoningEffort.HIGH}[effort]
    ).with_conversation_start_date(DATE)
    if identity is not None:
        sc = sc.with_model_identity(identity)
    return Message.from_role_and_content(Role.SYSTEM, sc)


def weather_developer_message(instructions=None):
    from openai_harmony import DeveloperContent, Message, Role, ToolDescription
    f = WEATHER_TOOLS[0]["function"]
    dc = DeveloperContent.new()
    if instructions:
        dc = dc.with_instructions(instructions)
    dc = dc.with_function_tools([ToolDescription.new(f["name"], f["description"], parameters=f["parameters"])])
    return Message.from_role_and_content(Role.DEVELOPER, dc)


def render_for_completion(enc, messages):
    from openai_harmony import Conversation, Role
    return enc.render_conversation_for_completion(Conversation.from_messages(messages), Role.ASSISTANT)


def run_jsonl(gptoss_bin, args, records, timeout=300):
    """`gptoss *args` in one process with one JSON record a line on stdin; one parsed record a line out."""
    stdin = "".join(json.dumps(r) + "\n" for r in records)
    r = subprocess.run([gptoss_bin, *args], input=stdin.encode(), capture_output=True, timeout=timeout)
    assert r.returncode == 0, r.stderr.decode()
    # split on \n only: str.splitlines() would also split inside JSON strings at U+2028
    out = [json.loads(line) for line in r.stdout.decode().split("\n") if line]
    assert len(out) == len(records)
    return out


def run(gptoss_bin, *args, timeout=120, input=None):
    return subprocess.run([gptoss_bin, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          input=input)
