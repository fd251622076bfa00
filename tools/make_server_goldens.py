#!/usr/bin/env python3
"""Goldens for the server's harmony work, from the openai-harmony package (the oracle).

1. outputs: model outputs as token ids, with openai-harmony's parse of them
   (parse_messages_from_completion_tokens). The server test feeds the ids through a scripted
   engine and checks reasoning / content / tool calls against these messages.
2. prompts: OpenAI chat-completions requests with the prompt openai-harmony renders for the
   equivalent conversation (system with effort + date, developer with instructions + function
   tools, reasoning replayed as analysis, tool calls and results). The server test checks the
   prompt the server submits to the engine equals it token for token.

Run: TIKTOKEN_ENCODINGS_BASE=tests/data .venv/bin/python tools/make_server_goldens.py
"""
import json
import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("TIKTOKEN_ENCODINGS_BASE", str(ROOT / "tests" / "data"))

from openai_harmony import (  # noqa: E402
    Conversation, DeveloperContent, HarmonyEncodingName, Message, ReasoningEffort, Role,
    SystemContent, ToolDescription, load_harmony_encoding)

enc = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
DATE = "2026-01-02"

OUTPUTS = {
    "analysis_then_final":
        '<|channel|>analysis<|message|>User asks: "What is 2 + 2?" Simple arithmetic.<|end|>'
        '<|start|>assistant<|channel|>final<|message|>2 + 2 = 4.<|return|>',
    "tool_call_after_channel":
        '<|channel|>analysis<|message|>Need the weather tool.<|end|>'
        '<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json'
        '<|message|>{"city":"Berlin","unit":"celsius"}<|call|>',
    "tool_call_in_role":
        '<|channel|>analysis<|message|>Look it up.<|end|>'
        '<|start|>assistant to=functions.lookup<|channel|>commentary <|constrain|>json'
        '<|message|>{"q": "gpt-oss", "n": 3}<|call|>',
    "preamble_then_call":
        '<|channel|>analysis<|message|>Plan first.<|end|>'
        '<|start|>assistant<|channel|>commentary<|message|>Checking the weather now.<|end|>'
        '<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json'
        '<|message|>{"city":"Paris"}<|call|>',
    "unicode_final":
        '<|channel|>analysis<|message|>Grüße → 日本語 🌍<|end|>'
        '<|start|>assistant<|channel|>final<|message|>Hallo Wörld 🌍! 日本語です。<|return|>',
}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Gets the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
            },
            "required": ["city"],
        },
    },
}


def system(effort):
    return Message.from_role_and_content(
        Role.SYSTEM,
        SystemContent.new().with_reasoning_effort(effort).with_conversation_start_date(DATE))


PROMPTS = []

# 1. Tool loop in progress: system -> developer instructions + tools, reasoning kept.
req1 = {
    "model": "test-model",
    "reasoning_effort": "high",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather in Berlin?"},
        {"role": "assistant", "content": None, "reasoning_content": "Need the weather tool.",
         "tool_calls": [{"id": "call_1", "type": "function",
                         "function": {"name": "get_weather", "arguments": "{\"city\":\"Berlin\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\": 21}"},
    ],
    "tools": [WEATHER_TOOL],
}
conv1 = Conversation.from_messages([
    system(ReasoningEffort.HIGH),
    Message.from_role_and_content(
        Role.DEVELOPER,
        DeveloperContent.new().with_instructions("You are terse.").with_function_tools([
            ToolDescription.new(WEATHER_TOOL["function"]["name"],
                                WEATHER_TOOL["function"]["description"],
                                parameters=WEATHER_TOOL["function"]["parameters"])])),
    Message.from_role_and_content(Role.USER, "Weather in Berlin?"),
    Message.from_role_and_content(Role.ASSISTANT, "Need the weather tool.").with_channel("analysis"),
    Message.from_role_and_content(Role.ASSISTANT, "{\"city\":\"Berlin\"}")
    .with_channel("commentary").with_recipient("functions.get_weather")
    .with_content_type("<|constrain|>json"),
    Message.from_author_and_content(
        __import__("openai_harmony").Author.new(Role.TOOL, "functions.get_weather"),
        "{\"temp_c\": 21}").with_recipient("assistant").with_channel("commentary"),
])
PROMPTS.append({"name": "tool_loop", "request": req1,
                "tokens": enc.render_conversation_for_completion(conv1, Role.ASSISTANT)})

# 2. Finished turn: its reasoning is dropped; developer message absent (no instructions/tools).
req2 = {
    "model": "test-model",
    "reasoning_effort": "low",
    "messages": [
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "4.", "reasoning": "Simple arithmetic."},
        {"role": "user", "content": [{"type": "text", "text": "And 3 + 3?"}]},
    ],
}
conv2 = Conversation.from_messages([
    system(ReasoningEffort.LOW),
    Message.from_role_and_content(Role.USER, "What is 2 + 2?"),
    Message.from_role_and_content(Role.ASSISTANT, "Simple arithmetic.").with_channel("analysis"),
    Message.from_role_and_content(Role.ASSISTANT, "4.").with_channel("final"),
    Message.from_role_and_content(Role.USER, "And 3 + 3?"),
])
PROMPTS.append({"name": "finished_turn", "request": req2,
                "tokens": enc.render_conversation_for_completion(conv2, Role.ASSISTANT)})

# 3. Default effort (medium), developer role message as instructions.
req3 = {
    "model": "test-model",
    "messages": [
        {"role": "developer", "content": "Answer like a pirate."},
        {"role": "user", "content": "Hi"},
    ],
}
conv3 = Conversation.from_messages([
    system(ReasoningEffort.MEDIUM),
    Message.from_role_and_content(Role.DEVELOPER,
                                  DeveloperContent.new().with_instructions("Answer like a pirate.")),
    Message.from_role_and_content(Role.USER, "Hi"),
])
PROMPTS.append({"name": "developer_instructions", "request": req3,
                "tokens": enc.render_conversation_for_completion(conv3, Role.ASSISTANT)})


def message_json(m):
    return {
        "role": m.author.role.value,
        "channel": m.channel,
        "recipient": m.recipient,
        "content_type": m.content_type,
        "text": "".join(c.text for c in m.content),
    }


outputs = []
for name, text in OUTPUTS.items():
    tokens = enc.encode(text, allowed_special="all")
    msgs = enc.parse_messages_from_completion_tokens(tokens, Role.ASSISTANT)
    outputs.append({"name": name, "tokens": tokens, "messages": [message_json(m) for m in msgs]})

out = {"date": DATE, "outputs": outputs, "prompts": PROMPTS}
path = ROOT / "tests" / "data" / "server" / "harmony_goldens.json"
path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
print(f"wrote {path}: {len(outputs)} outputs, {len(PROMPTS)} prompts")
