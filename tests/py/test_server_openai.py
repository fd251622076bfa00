"""`gptoss serve` with the official openai SDK, on a tiny random checkpoint (full vocabulary).

A random model writes random tokens, so these tests check what does not depend on the model's
taste: request handling, shapes the SDK parses, usage numbers (prompt tokens against
openai-harmony's render of the same conversation), streaming framing, tool-call round trips, the
Responses event sequence and previous_response_id."""
import json
import threading

import pytest
from openai import OpenAI
from openai_harmony import (Author, Conversation, DeveloperContent, Message, ReasoningEffort, Role,
                            SystemContent, ToolDescription)

from server_util import DATE, MODEL_NAME, ServeProcess


@pytest.fixture(scope="module")
def server(gptoss_bin):
    s = ServeProcess(gptoss_bin)
    yield s
    assert s.alive(), "server died during the tests"
    assert s.stop() == 0


@pytest.fixture(scope="module")
def client(server):
    return OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Gets the weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


def system(effort):
    return Message.from_role_and_content(
        Role.SYSTEM, SystemContent.new().with_reasoning_effort(effort)
        .with_conversation_start_date(DATE))


def test_models_list(client):
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL_NAME]
    assert client.models.retrieve(MODEL_NAME).id == MODEL_NAME


def test_chat_create_usage_matches_harmony_render(client, enc):
    r = client.chat.completions.create(
        model=MODEL_NAME, max_tokens=12, temperature=0, reasoning_effort="low",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}])
    convo = Conversation.from_messages([
        system(ReasoningEffort.LOW),
        Message.from_role_and_content(Role.DEVELOPER,
                                      DeveloperContent.new().with_instructions("Be brief.")),
        Message.from_role_and_content(Role.USER, "Hi!")])
    want = len(enc.render_conversation_for_completion(convo, Role.ASSISTANT))
    assert r.object == "chat.completion"
    assert r.model == MODEL_NAME
    assert r.usage.prompt_tokens == want
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert choice.finish_reason in ("length", "stop", "tool_calls")
    if choice.finish_reason == "length":
        assert r.usage.completion_tokens == 12
    assert r.id.startswith("chatcmpl-")


def test_chat_greedy_is_deterministic(client):
    kw = dict(model=MODEL_NAME, max_tokens=10, temperature=0,
              messages=[{"role": "user", "content": "Count to three."}])
    a = client.chat.completions.create(**kw)
    b = client.chat.completions.create(**kw)
    assert a.choices[0].message.content == b.choices[0].message.content
    assert a.choices[0].message.model_dump().get("reasoning_content") == \
        b.choices[0].message.model_dump().get("reasoning_content")


def test_chat_stream_with_usage(client):
    stream = client.chat.completions.create(
        model=MODEL_NAME, max_completion_tokens=16, temperature=0, stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Tell me a story."}])
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishes) == 1
    usage = chunks[-1].usage
    assert chunks[-1].choices == []
    assert usage.completion_tokens == 16 or finishes[0] != "length"
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert len({c.id for c in chunks}) == 1
    # The stream says the same as the non-streaming reply for the same greedy request.
    text = "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)
    reasoning = "".join((c.choices[0].delta.model_dump().get("reasoning_content") or "")
                        for c in chunks if c.choices)
    full = client.chat.completions.create(
        model=MODEL_NAME, max_completion_tokens=16, temperature=0,
        messages=[{"role": "user", "content": "Tell me a story."}])
    assert text == (full.choices[0].message.content or "")
    assert reasoning == (full.choices[0].message.model_dump().get("reasoning_content") or "")


def test_chat_forced_tool_call_round_trip(client, enc):
    r = client.chat.completions.create(
        model=MODEL_NAME, max_tokens=8, temperature=0, tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        messages=[{"role": "user", "content": "Weather in Berlin?"}])
    msg = r.choices[0].message
    assert msg.tool_calls and msg.tool_calls[0].function.name == "get_weather"
    call = msg.tool_calls[0]
    assert call.id.startswith("call_") and call.type == "function"
    assert isinstance(call.function.arguments, str)
    assert r.choices[0].finish_reason in ("length", "tool_calls")
    # Send the call and a result back, with reasoning, as a client does in a tool loop.
    messages = [{"role": "user", "content": "Weather in Berlin?"},
                {"role": "assistant", "content": None, "reasoning_content": "Need the tool.",
                 "tool_calls": [{"id": call.id, "type": "function",
                                 "function": {"name": "get_weather",
                                              "arguments": "{\"city\":\"Berlin\"}"}}]},
                {"role": "tool", "tool_call_id": call.id, "content": "{\"temp_c\": 21}"}]
    r2 = client.chat.completions.create(model=MODEL_NAME, max_tokens=4, temperature=0,
                                        tools=[WEATHER], messages=messages)
    convo = Conversation.from_messages([
        system(ReasoningEffort.MEDIUM),
        Message.from_role_and_content(Role.DEVELOPER, DeveloperContent.new().with_function_tools([
            ToolDescription.new("get_weather", "Gets the weather in a city.",
                                parameters=WEATHER["function"]["parameters"])])),
        Message.from_role_and_content(Role.USER, "Weather in Berlin?"),
        Message.from_role_and_content(Role.ASSISTANT, "Need the tool.").with_channel("analysis"),
        Message.from_role_and_content(Role.ASSISTANT, "{\"city\":\"Berlin\"}")
        .with_channel("commentary").with_recipient("functions.get_weather")
        .with_content_type("<|constrain|>json"),
        Message.from_author_and_content(Author.new(Role.TOOL, "functions.get_weather"),
                                        "{\"temp_c\": 21}")
        .with_recipient("assistant").with_channel("commentary")])
    assert r2.usage.prompt_tokens == len(enc.render_conversation_for_completion(convo, Role.ASSISTANT))


def test_chat_stream_forced_tool_call_deltas(client):
    stream = client.chat.completions.create(
        model=MODEL_NAME, max_tokens=6, temperature=0, stream=True, tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        messages=[{"role": "user", "content": "Weather?"}])
    calls = {}
    for c in stream:
        if c.choices and c.choices[0].delta.tool_calls:
            for tc in c.choices[0].delta.tool_calls:
                if tc.id:
                    calls[tc.index] = {"id": tc.id, "name": tc.function.name, "args": ""}
                calls[tc.index]["args"] += tc.function.arguments or ""
    assert list(calls) == [0] and calls[0]["name"] == "get_weather"


def test_completions_raw_prompt(client):
    r = client.completions.create(model=MODEL_NAME, prompt="<|start|>user<|message|>hi<|end|>",
                                  max_tokens=5, temperature=0)
    assert r.object == "text_completion"
    assert r.usage.prompt_tokens == 5
    assert r.usage.completion_tokens <= 5
    chunks = list(client.completions.create(model=MODEL_NAME, prompt="Hello", max_tokens=5,
                                            temperature=0, stream=True))
    assert chunks[-1].choices[0].finish_reason in ("length", "stop")


def test_responses_create_and_previous_response_id(client, enc):
    r = client.responses.create(model=MODEL_NAME, input="Capital of France?",
                                instructions="Be brief.", max_output_tokens=8, temperature=0,
                                reasoning={"effort": "high"})
    assert r.object == "response" and r.id.startswith("resp_")
    assert r.status in ("completed", "incomplete")
    assert r.usage.input_tokens > 0 and r.usage.output_tokens <= 8
    convo = Conversation.from_messages([
        system(ReasoningEffort.HIGH),
        Message.from_role_and_content(Role.DEVELOPER,
                                      DeveloperContent.new().with_instructions("Be brief.")),
        Message.from_role_and_content(Role.USER, "Capital of France?")])
    assert r.usage.input_tokens == len(enc.render_conversation_for_completion(convo, Role.ASSISTANT))
    r2 = client.responses.create(model=MODEL_NAME, input="And Spain?", previous_response_id=r.id,
                                 max_output_tokens=4, temperature=0)
    assert r2.previous_response_id == r.id
    assert r2.usage.input_tokens > r.usage.input_tokens


def test_responses_stream_events(client):
    events = list(client.responses.create(model=MODEL_NAME, input="Hi", max_output_tokens=10,
                                          temperature=0, stream=True))
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[1] == "response.in_progress"
    assert types[-1] in ("response.completed", "response.incomplete")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    assert final.usage.output_tokens <= 10
    # Every item that was added is done, with the text its deltas spelled.
    added = [e.item.id for e in events if e.type == "response.output_item.added"]
    done = [e.item.id for e in events if e.type == "response.output_item.done"]
    assert added == done == [item.id for item in final.output]
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == final.output_text


def test_responses_function_call_round_trip(client):
    r = client.responses.create(
        model=MODEL_NAME, input="Weather in Paris?", max_output_tokens=6, temperature=0,
        tools=[{"type": "function", "name": "get_weather", "description": "Weather",
                "parameters": WEATHER["function"]["parameters"]}],
        tool_choice={"type": "function", "name": "get_weather"})
    calls = [o for o in r.output if o.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather" and calls[0].call_id.startswith("call_")
    r2 = client.responses.create(
        model=MODEL_NAME, max_output_tokens=4, temperature=0,
        tools=[{"type": "function", "name": "get_weather", "parameters": WEATHER["function"]["parameters"]}],
        input=[{"role": "user", "content": "Weather in Paris?"},
               {"type": "function_call", "call_id": calls[0].call_id, "name": "get_weather",
                "arguments": "{\"city\":\"Paris\"}"},
               {"type": "function_call_output", "call_id": calls[0].call_id, "output": "{\"c\":20}"}])
    assert r2.status in ("completed", "incomplete")


def test_concurrent_streams(client):
    results = [None] * 8
    def run(i):
        chunks = list(client.chat.completions.create(
            model=MODEL_NAME, max_tokens=20, temperature=0.8, seed=i, stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": f"Stream number {i}"}]))
        results[i] = chunks
    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for chunks in results:
        assert chunks is not None
        assert chunks[0].choices[0].delta.role == "assistant"
        assert chunks[-1].usage is not None
        assert sum(1 for c in chunks if c.choices and c.choices[0].finish_reason) == 1


def test_responses_stream_helper_accepts_the_event_sequence(client):
    # The SDK's stream helper rebuilds the response from the events and asserts their types and
    # indexes (a delta must land on an item of the right type at its output_index).
    tools = [{"type": "function", "name": "get_weather", "parameters": WEATHER["function"]["parameters"]}]
    with client.responses.stream(model=MODEL_NAME, input="Weather?", max_output_tokens=6,
                                 temperature=0, tools=tools,
                                 tool_choice={"type": "function", "name": "get_weather"}) as s:
        events = list(s)
    types = [e.type for e in events]
    assert types[2] == "response.output_item.added" and events[2].item.type == "function_call"
    assert "response.function_call_arguments.done" in types
    assert types[-1] == "response.incomplete"  # max_output_tokens reached
    last = events[-1].response
    assert last.incomplete_details.reason == "max_output_tokens"
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert last.output[0].arguments == args
