"""`gptoss serve` over raw HTTP: every error case gives an OpenAI-style error object with the
right status, auth, the default bind address, the body limit, 429 when full, and a client
disconnect that frees the sequence."""
import http.client
import json
import os
import socket
import threading
import time

import pytest
import requests

from server_util import MODEL_NAME, ServeProcess, metric

CHAT = "/v1/chat/completions"


def body(**kw):
    b = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    b.update(kw)
    return b


@pytest.fixture(scope="module")
def server(gptoss_bin):
    s = ServeProcess(gptoss_bin, "--max-active", "2", "--max-body-bytes", "65536")
    yield s
    assert s.alive()
    s.stop()


def check_error(r, status, param=None, code=None):
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    err = r.json()["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str)
    assert "param" in err and "code" in err
    if param is not None:
        assert err["param"] == param, err
    if code is not None:
        assert err["code"] == code, err
    return err


CASES = [
    ("not json", 400, None),
    ("[]", 400, None),
    (json.dumps({"messages": [{"role": "user", "content": "x"}]}), 400, "model"),
    (json.dumps(body(messages="hi")), 400, "messages"),
    (json.dumps(body(messages=[])), 400, "messages"),
    (json.dumps(body(messages=[{"role": "alien", "content": "x"}])), 400, "messages[0].role"),
    (json.dumps(body(messages=[{"role": "user", "content": {"a": 1}}])), 400, "messages[0].content"),
    (json.dumps(body(temperature=-1)), 400, "temperature"),
    (json.dumps(body(temperature="warm")), 400, "temperature"),
    (json.dumps(body(top_p=1.5)), 400, "top_p"),
    (json.dumps(body(max_tokens=0)), 400, "max_tokens"),
    (json.dumps(body(max_tokens="10")), 400, "max_tokens"),
    (json.dumps(body(max_completion_tokens=-5)), 400, "max_completion_tokens"),
    (json.dumps(body(stream=1)), 400, "stream"),
    (json.dumps(body(stop=[1, 2])), 400, "stop[0]"),
    (json.dumps(body(reasoning_effort="none")), 400, "reasoning_effort"),
    (json.dumps(body(tools=[{"type": "function"}])), 400, "tools[0].function"),
    (json.dumps(body(tool_choice="sometimes")), 400, "tool_choice"),
    (json.dumps(body(seed="x")), 400, "seed"),
    (json.dumps(body(response_format={"type": "json_schema"})), 400, "response_format.json_schema"),
]


@pytest.mark.parametrize("payload,status,param", CASES)
def test_chat_errors(server, payload, status, param):
    r = requests.post(server.url + CHAT, data=payload, timeout=30,
                      headers={"Content-Type": "application/json"})
    check_error(r, status, param)


def test_unknown_model_is_404(server):
    check_error(requests.post(server.url + CHAT, json=body(model="gpt-5"), timeout=30), 404,
                "model", "model_not_found")
    check_error(requests.post(server.url + "/v1/responses", json={"model": "x", "input": "hi"},
                              timeout=30), 404, "model", "model_not_found")
    check_error(requests.get(server.url + "/v1/models/nope", timeout=30), 404)


def test_context_overflow_is_400_and_says_so(server):
    err = check_error(requests.post(server.url + CHAT, json=body(max_tokens=10000), timeout=30),
                      400, code="context_length_exceeded")
    assert "maximum context length is 4096" in err["message"]
    long = "word " * 5000
    err = check_error(requests.post(server.url + CHAT, timeout=30,
                                    json=body(messages=[{"role": "user", "content": long}],
                                              max_tokens=None)),
                      400, code="context_length_exceeded")


def test_responses_and_completions_errors(server):
    u = server.url
    check_error(requests.post(u + "/v1/responses", json={"model": MODEL_NAME}, timeout=30), 400, "input")
    check_error(requests.post(u + "/v1/responses", timeout=30,
                              json={"model": MODEL_NAME, "input": "x", "previous_response_id": "resp_0"}),
                404, "previous_response_id")
    check_error(requests.post(u + "/v1/responses", timeout=30,
                              json={"model": MODEL_NAME, "input": [{"type": "function_call_output",
                                                                    "call_id": "c", "output": "o"}]}),
                400, "input[0].call_id")
    check_error(requests.post(u + "/v1/completions", json={"model": MODEL_NAME}, timeout=30), 400, "prompt")
    check_error(requests.post(u + "/v1/completions", timeout=30,
                              json={"model": MODEL_NAME, "prompt": "x", "max_tokens": 1.5}),
                400, "max_tokens")


def test_ollama_errors_use_ollama_shape(server):
    r = requests.post(server.url + "/api/chat", json={"model": "nope", "messages": []}, timeout=30)
    assert r.status_code in (400, 404) and isinstance(r.json()["error"], str)
    r = requests.post(server.url + "/api/chat", timeout=30,
                      json={"model": MODEL_NAME, "messages": [{"role": "user", "content": "x"}],
                            "think": "very"})
    assert r.status_code == 400 and "think" in r.json()["error"]


def test_body_limit_and_unknown_route(server):
    big = json.dumps(body(messages=[{"role": "user", "content": "a" * 70000}]))
    check_error(requests.post(server.url + CHAT, data=big, timeout=30,
                              headers={"Content-Type": "application/json"}), 413)
    check_error(requests.get(server.url + "/v2/whatever", timeout=30), 404)


def test_binds_localhost_only(server):
    assert server.url.startswith("http://127.0.0.1:")
    # Not reachable through another local address of this host, if it has one.
    try:
        other = socket.gethostbyname(socket.gethostname())
    except OSError:
        return
    if other.startswith("127."):
        return
    with pytest.raises(OSError):
        socket.create_connection((other, server.port), timeout=2).close()


def test_health_and_metrics(server):
    assert requests.get(server.url + "/health", timeout=10).json()["status"] == "ok"
    requests.post(server.url + CHAT, json=body(), timeout=60).raise_for_status()
    m = requests.get(server.url + "/metrics", timeout=10)
    assert m.headers["Content-Type"].startswith("text/plain")
    text = m.text
    for name in ("gptoss_http_requests_total", "gptoss_prompt_tokens_total",
                 "gptoss_generated_tokens_total", "gptoss_queue_depth",
                 "gptoss_time_to_first_token_seconds_bucket", "gptoss_last_generation_tokens_per_second"):
        assert name in text
    assert 'gptoss_http_requests_total{route="/v1/chat/completions",code="200"}' in text


def open_stream(server, max_tokens=3000):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("POST", CHAT, json.dumps(body(max_tokens=max_tokens, stream=True, temperature=1.0)),
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.readline().startswith(b"data: ")
    return conn, resp


def test_full_server_429_then_disconnect_frees_it(server):
    streams = [open_stream(server), open_stream(server)]  # --max-active 2
    r = requests.post(server.url + CHAT, json=body(), timeout=30)
    err = check_error(r, 429, code="rate_limit_exceeded")
    assert int(r.headers["Retry-After"]) >= 1
    before = metric(server.url, "gptoss_client_disconnects_total")
    for conn, resp in streams:  # hang up: close every handle on the socket
        conn.sock.shutdown(socket.SHUT_RDWR)
        resp.close()
        conn.close()
    deadline = time.time() + 20
    while time.time() < deadline and metric(server.url, "gptoss_sequences_running") > 0:
        time.sleep(0.1)
    assert metric(server.url, "gptoss_sequences_running") == 0
    assert metric(server.url, "gptoss_client_disconnects_total") == before + 2
    r = requests.post(server.url + CHAT, json=body(), timeout=60)
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def secured(gptoss_bin):
    env = dict(os.environ, GPTOSS_API_KEY="s3cret")
    s = ServeProcess(gptoss_bin, env=env)
    yield s
    s.stop()


def test_api_key_from_environment(secured):
    u = secured.url
    assert requests.get(u + "/health", timeout=10).status_code == 200
    for path in ("/v1/models", "/metrics", "/api/tags", "/api/version"):
        r = requests.get(u + path, timeout=10)
        assert r.status_code == 401, path
    check_error(requests.post(u + CHAT, json=body(), timeout=10), 401, code="invalid_api_key")
    check_error(requests.post(u + CHAT, json=body(), timeout=10,
                              headers={"Authorization": "Bearer wrong"}), 401)
    r = requests.post(u + CHAT, json=body(), timeout=60, headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200, r.text
    assert isinstance(requests.post(u + "/api/chat", json={}, timeout=10).json()["error"], str)


def test_api_key_flag(gptoss_bin):
    s = ServeProcess(gptoss_bin, "--api-key", "k1")
    try:
        from openai import OpenAI, AuthenticationError
        with pytest.raises(AuthenticationError):
            OpenAI(base_url=s.url + "/v1", api_key="k2", max_retries=0).models.list()
        assert OpenAI(base_url=s.url + "/v1", api_key="k1").models.list().data[0].id == MODEL_NAME
    finally:
        s.stop()


def test_deeply_nested_json_is_400_not_a_crash(server):
    n = 1000  # ~24 KB: under the body limit, far over the depth limit
    schema = '{"type":"array","items":' * n + '{"type":"string"}' + "}" * n
    payload = ('{"model":"%s","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function",'
               '"function":{"name":"f","parameters":%s}}]}' % (MODEL_NAME, schema))
    r = requests.post(server.url + CHAT, data=payload, timeout=30,
                      headers={"Content-Type": "application/json"})
    err = check_error(r, 400)
    assert "nested" in err["message"]
    assert requests.get(server.url + "/health", timeout=10).status_code == 200
