"""`gptoss serve` with the official `ollama` Python client: chat, generate, streaming (NDJSON),
think levels, tool calls with object arguments, tags/show/version."""
import json

import ollama
import pytest
import requests

from cli_util import harmony_encoding
from server_util import MODEL_NAME, ServeProcess


@pytest.fixture(scope="module")
def server(gptoss_bin):
    s = ServeProcess(gptoss_bin)
    yield s
    assert s.alive()
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    return ollama.Client(host=server.url)


def test_chat(client):
    r = client.chat(model=MODEL_NAME, messages=[{"role": "user", "content": "Hi"}],
                    options={"num_predict": 8, "temperature": 0}, think="low")
    assert r.done and r.done_reason in ("length", "stop")
    assert r.message.role == "assistant"
    assert r.eval_count <= 8 and r.prompt_eval_count > 0
    assert r.total_duration > 0


def test_chat_stream_matches_non_stream(client):
    kw = dict(model=MODEL_NAME, messages=[{"role": "user", "content": "Hello there"}],
              options={"num_predict": 12, "temperature": 0}, think="high")
    parts = list(client.chat(stream=True, **kw))
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    content = "".join(p.message.content or "" for p in parts)
    thinking = "".join(p.message.thinking or "" for p in parts)
    full = client.chat(**kw)
    assert content == full.message.content
    assert thinking == (full.message.thinking or "")
    assert parts[-1].eval_count == full.eval_count


def test_think_levels_change_the_prompt(client):
    counts = {}
    for think in (True, "low", "medium", "high"):
        r = client.chat(model=MODEL_NAME, messages=[{"role": "user", "content": "x"}],
                        options={"num_predict": 1}, think=think)
        counts[str(think)] = r.prompt_eval_count
    # "Reasoning: low|medium|high" are one token each; True means medium.
    assert counts["True"] == counts["medium"] == counts["low"] == counts["high"]


def test_generate_and_stream(client):
    r = client.generate(model=MODEL_NAME, prompt="Why is the sky blue?",
                        options={"num_predict": 6, "temperature": 0})
    assert r.done and r.eval_count <= 6
    assert isinstance(r.context, list) and len(r.context) == r.prompt_eval_count + r.eval_count
    parts = list(client.generate(model=MODEL_NAME, prompt="Why is the sky blue?", stream=True,
                                 options={"num_predict": 6, "temperature": 0}))
    assert parts[-1].done
    assert "".join(p.response for p in parts) == r.response


def test_generate_raw(client):
    prompt = "<|start|>user<|message|>hi<|end|><|start|>assistant"
    r = client.generate(model=MODEL_NAME, prompt=prompt, raw=True,
                        options={"num_predict": 4, "temperature": 0})
    ids = harmony_encoding().encode(prompt, allowed_special="all")
    assert r.prompt_eval_count == len(ids)
    assert r.context[:len(ids)] == ids


def test_stream_is_ndjson(server):
    with requests.post(server.url + "/api/chat", stream=True, timeout=60,
                       json={"model": MODEL_NAME, "messages": [{"role": "user", "content": "a"}],
                             "options": {"num_predict": 5}}) as r:
        assert r.headers["Content-Type"].startswith("application/x-ndjson")
        lines = [json.loads(l) for l in r.iter_lines() if l]
    assert lines[-1]["done"] is True and "done_reason" in lines[-1]


def test_tool_history_with_object_arguments(client):
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    r = client.chat(model=MODEL_NAME, tools=tools, options={"num_predict": 3},
                    messages=[{"role": "user", "content": "Weather in Tokyo?"},
                              {"role": "assistant", "content": "", "thinking": "Need tool.",
                               "tool_calls": [{"function": {"name": "get_weather",
                                                            "arguments": {"city": "Tokyo"}}}]},
                              {"role": "tool", "tool_name": "get_weather", "content": "{\"c\":21}"}])
    assert r.done


def test_list_show_version(client, server):
    models = client.list().models
    assert [m.model for m in models] == [MODEL_NAME]
    shown = client.show(MODEL_NAME)
    assert "tools" in shown.capabilities and "thinking" in shown.capabilities
    assert requests.get(server.url + "/api/version", timeout=10).json()["version"]
    with pytest.raises(ollama.ResponseError) as e:
        client.chat(model="missing-model", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 404
