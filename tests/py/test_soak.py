"""Soak: `gptoss serve` on the tiny model under a bounded mixed load from several client threads.

Every response is checked against what it must be: OpenAI chat (SDK and raw SSE, streaming and
not), Responses (SDK and raw SSE), Ollama chat/generate (client and raw NDJSON), forced tool calls,
clients that hang up at a random byte of the request or of the reply, oversized bodies, malformed
JSON, wrong types, unknown routes and cheap GETs, while one thread polls /health. After the load the
server's memory must come back near its level after a warm-up load (leak check), greedy replies
must equal those given before the load (no state leaks between sequences), and SIGTERM must end it
with status 0.

GPTOSS_SOAK_SECONDS sets the main phase (default 45 s, for CI); GPTOSS_SOAK_CLIENTS the client
threads (default 8); GPTOSS_SOAK_REPORT a path to write the figures to as JSON."""
import collections
import http.client
import json
import os
import random
import socket
import struct
import threading
import time

import ollama
import pytest
import requests
from openai import OpenAI, RateLimitError

from server_util import MODEL_NAME, ServeProcess, wait_idle

SECONDS = float(os.environ.get("GPTOSS_SOAK_SECONDS", "45"))
CLIENTS = int(os.environ.get("GPTOSS_SOAK_CLIENTS", "8"))
MAX_BODY = 65536
MIB = 1024 * 1024

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Gets the weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


class Rejected(Exception):
    """A 429 with the right shape and Retry-After: expected when the server is full."""


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM", "Threads"):
                out[key] = int(rest.split()[0])
    return out


# ---- shape checks ----

def check_openai_error(status, headers, body, want_status, param=None):
    assert status == want_status, (status, body[:300])
    assert headers.get("Content-Type", "").startswith("application/json"), headers
    err = json.loads(body)["error"]
    assert isinstance(err["message"], str) and err["message"], err
    assert isinstance(err["type"], str) and "param" in err and "code" in err, err
    if param is not None:
        assert err["param"] == param, err
    if want_status == 429:
        assert int(headers["Retry-After"]) >= 1


def check_ollama_error(status, headers, body, want_status):
    assert status == want_status, (status, body[:300])
    assert headers.get("Content-Type", "").startswith("application/json"), headers
    err = json.loads(body)["error"]
    assert isinstance(err, str) and err


def check_error(path, status, headers, body, want_status, param=None):
    if path.startswith("/api/"):
        check_ollama_error(status, headers, body, want_status)
    else:
        check_openai_error(status, headers, body, want_status, param)


def raise_if_429(path, resp, body=None):
    if resp.status != 429:
        return
    body = resp.read() if body is None else body
    check_error(path, 429, dict(resp.getheaders()), body, 429)
    raise Rejected()


def read_sse(resp):
    """Strict SSE framing: 'event:'/'data:' fields, ':' comments (heartbeats), blank line ends an
    event. Returns [(event_type or None, data string)]."""
    events, ev_type, data = [], None, None
    while True:
        line = resp.readline()
        if not line:
            assert ev_type is None and data is None, "stream ended inside an event"
            return events
        assert line.endswith(b"\n"), line
        line = line[:-1].decode("utf-8")
        if line == "":
            if data is not None:
                events.append((ev_type, data))
            ev_type, data = None, None
        elif line.startswith(":"):
            continue
        elif line.startswith("event: "):
            assert ev_type is None, line
            ev_type = line[7:]
        elif line.startswith("data: "):
            assert data is None, "one data line per event"
            data = line[6:]
        else:
            raise AssertionError(f"not SSE: {line[:200]!r}")


def read_ndjson(resp):
    """Every line a JSON object (a heartbeat is leading whitespace); the last says done."""
    out = []
    for raw in resp.read().split(b"\n"):
        if not raw.strip():
            assert raw.strip(b" ") == b"", raw
            continue
        out.append(json.loads(raw))
    assert out and out[-1]["done"] is True, out[-1:]
    assert all(o["done"] is False for o in out[:-1])
    return out


def post_raw(port, path, body, timeout=120):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    conn.request("POST", path, data, {"Content-Type": "application/json"})
    return conn, conn.getresponse()


def post_stream(port, path, body, content_type, read):
    """POSTs a streaming request and reads the whole stream with `read`; a 429 raises Rejected."""
    conn, resp = post_raw(port, path, body)
    try:
        raise_if_429(path, resp)
        assert resp.status == 200 and resp.getheader("Content-Type").startswith(content_type)
        return read(resp)
    finally:
        conn.close()


def user(rng):
    return [{"role": "user", "content": rng.choice(["Hi", "Weather?", "Tell me a story.",
                                                    "2+2?", "Über straße ✓ 日本"]) + f" {rng.random()}"}]


# ---- request kinds: each returns normally when the response was right ----

class Load:
    def __init__(self, server):
        self.s = server
        self.port = server.port
        self.url = server.url
        self.local = threading.local()

    def sdk(self):
        if not hasattr(self.local, "client"):
            self.local.client = OpenAI(base_url=self.url + "/v1", api_key="unused", max_retries=0,
                                       timeout=120)
            self.local.ollama = ollama.Client(host=self.url, timeout=120)
        return self.local.client

    def oll(self):
        self.sdk()
        return self.local.ollama

    def close(self):
        if hasattr(self.local, "client"):
            self.local.client.close()
            del self.local.client

    def openai_chat(self, rng):
        n = rng.randint(1, 24)
        try:
            r = self.sdk().chat.completions.create(
                model=MODEL_NAME, max_tokens=n, temperature=rng.choice([0, 0.7, 1.0]),
                seed=rng.randint(0, 1000), messages=user(rng),
                reasoning_effort=rng.choice(["low", "medium", "high"]))
        except RateLimitError as e:
            check_openai_error(429, e.response.headers, e.response.content, 429)
            raise Rejected()
        assert r.object == "chat.completion" and r.model == MODEL_NAME and r.id.startswith("chatcmpl-")
        c = r.choices[0]
        assert c.message.role == "assistant" and c.finish_reason in ("stop", "length", "tool_calls")
        assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
        assert 0 < r.usage.completion_tokens <= n
        if c.finish_reason == "length":
            assert r.usage.completion_tokens == n

    def openai_chat_stream(self, rng):
        n = rng.randint(1, 24)
        try:
            chunks = list(self.sdk().chat.completions.create(
                model=MODEL_NAME, max_tokens=n, temperature=1.0, stream=True, messages=user(rng),
                stream_options={"include_usage": True}))
        except RateLimitError as e:
            check_openai_error(429, e.response.headers, e.response.content, 429)
            raise Rejected()
        assert chunks[0].choices[0].delta.role == "assistant"
        assert len({c.id for c in chunks}) == 1
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert len(finishes) == 1 and finishes[0] in ("stop", "length", "tool_calls")
        assert chunks[-1].choices == [] and 0 < chunks[-1].usage.completion_tokens <= n

    def openai_chat_sse(self, rng):
        """Raw bytes: strict SSE framing, data: [DONE] last."""
        n = rng.randint(1, 24)
        events = post_stream(self.port, "/v1/chat/completions", {
            "model": MODEL_NAME, "max_tokens": n, "stream": True, "messages": user(rng),
            "stream_options": {"include_usage": True}}, "text/event-stream", read_sse)
        assert events[-1] == (None, "[DONE]")
        chunks = [json.loads(d) for t, d in events[:-1]]
        assert all(t is None for t, _ in events)
        assert all(c["object"] == "chat.completion.chunk" for c in chunks)
        assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]) == 1
        assert chunks[-1]["usage"]["completion_tokens"] <= n

    def openai_responses(self, rng):
        n = rng.randint(1, 24)
        chain = rng.random() < 0.3
        try:
            # Only responses that are continued are stored: the store keeps up to 1024 of them,
            # which would otherwise blur the leak check below.
            r = self.sdk().responses.create(model=MODEL_NAME, input=user(rng)[0]["content"],
                                            max_output_tokens=n, temperature=0.8, store=chain,
                                            instructions=rng.choice([None, "Be brief."]))
        except RateLimitError as e:
            check_openai_error(429, e.response.headers, e.response.content, 429)
            raise Rejected()
        assert r.object == "response" and r.id.startswith("resp_")
        assert r.status in ("completed", "incomplete") and 0 < r.usage.output_tokens <= n
        if r.status == "incomplete":
            assert r.incomplete_details.reason == "max_output_tokens"
        if chain:  # continue the conversation from the server's store
            r2 = self.sdk().responses.create(model=MODEL_NAME, input="And then?", max_output_tokens=4,
                                             previous_response_id=r.id, store=False)
            assert r2.previous_response_id == r.id
            assert r2.usage.input_tokens > r.usage.input_tokens

    def openai_responses_sse(self, rng):
        """Raw bytes: 'event: T' equals the data's type, sequence numbers count from 0."""
        n = rng.randint(1, 24)
        events = post_stream(self.port, "/v1/responses", {
            "model": MODEL_NAME, "max_output_tokens": n, "stream": True, "input": "Hello",
            "store": False}, "text/event-stream", read_sse)
        datas = [json.loads(d) for _, d in events]
        assert [t for t, _ in events] == [d["type"] for d in datas]
        assert [d["sequence_number"] for d in datas] == list(range(len(datas)))
        assert datas[0]["type"] == "response.created"
        assert datas[-1]["type"] in ("response.completed", "response.incomplete")
        assert datas[-1]["response"]["usage"]["output_tokens"] <= n

    def openai_tool_call(self, rng):
        stream = rng.random() < 0.5
        try:
            if rng.random() < 0.5:
                r = self.sdk().chat.completions.create(
                    model=MODEL_NAME, max_tokens=8, temperature=0.5, tools=[WEATHER], stream=stream,
                    tool_choice={"type": "function", "function": {"name": "get_weather"}},
                    messages=[{"role": "user", "content": "Weather in Berlin?"}])
                if stream:
                    names = [tc.function.name for c in r if c.choices and c.choices[0].delta.tool_calls
                             for tc in c.choices[0].delta.tool_calls if tc.id]
                    assert names == ["get_weather"], names
                else:
                    calls = r.choices[0].message.tool_calls
                    assert calls and calls[0].function.name == "get_weather"
                    assert calls[0].id.startswith("call_")
                    assert r.choices[0].finish_reason in ("length", "tool_calls")
            else:
                r = self.sdk().responses.create(
                    model=MODEL_NAME, input="Weather in Paris?", max_output_tokens=6, store=False,
                    tools=[{"type": "function", "name": "get_weather",
                            "parameters": WEATHER["function"]["parameters"]}],
                    tool_choice={"type": "function", "name": "get_weather"})
                calls = [o for o in r.output if o.type == "function_call"]
                assert len(calls) == 1 and calls[0].name == "get_weather"
        except RateLimitError as e:
            check_openai_error(429, e.response.headers, e.response.content, 429)
            raise Rejected()

    def ollama_chat(self, rng):
        n = rng.randint(1, 24)
        try:
            r = self.oll().chat(model=MODEL_NAME, messages=user(rng), think=rng.choice([True, "low"]),
                                options={"num_predict": n, "temperature": 0.7})
        except ollama.ResponseError as e:
            if e.status_code == 429:
                raise Rejected()
            raise
        assert r.done and r.done_reason in ("stop", "length") and r.message.role == "assistant"
        assert 0 < r.eval_count <= n and r.prompt_eval_count > 0

    def ollama_stream(self, rng):
        """Raw NDJSON from /api/chat or /api/generate."""
        n = rng.randint(1, 24)
        if rng.random() < 0.5:
            path, body = "/api/chat", {"model": MODEL_NAME, "messages": user(rng),
                                       "options": {"num_predict": n}}
        else:
            path, body = "/api/generate", {"model": MODEL_NAME, "prompt": "Why?",
                                           "options": {"num_predict": n}}
        lines = post_stream(self.port, path, body, "application/x-ndjson", read_ndjson)
        assert lines[-1]["done_reason"] in ("stop", "length") and lines[-1]["eval_count"] <= n
        assert all(l["model"] == MODEL_NAME for l in lines)

    def ollama_generate(self, rng):
        n = rng.randint(1, 24)
        try:
            r = self.oll().generate(model=MODEL_NAME, prompt="Why is the sky blue?",
                                    options={"num_predict": n, "temperature": 0.7})
        except ollama.ResponseError as e:
            if e.status_code == 429:
                raise Rejected()
            raise
        assert r.done and 0 < r.eval_count <= n
        assert len(r.context) == r.prompt_eval_count + r.eval_count

    def disconnect(self, rng):
        """Hang up at a random byte of the request or of the streamed reply (FIN or RST)."""
        path, body = rng.choice([
            ("/v1/chat/completions", {"model": MODEL_NAME, "stream": True, "max_tokens": 200,
                                      "messages": user(rng)}),
            ("/v1/chat/completions", {"model": MODEL_NAME, "max_tokens": 60, "messages": user(rng)}),
            ("/v1/responses", {"model": MODEL_NAME, "stream": True, "max_output_tokens": 200,
                               "input": "Hi", "store": False}),
            ("/api/chat", {"model": MODEL_NAME, "messages": user(rng), "options": {"num_predict": 200}}),
            ("/api/generate", {"model": MODEL_NAME, "prompt": "Hi", "options": {"num_predict": 200}}),
        ])
        data = json.dumps(body).encode()
        req = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(data)}\r\n\r\n").encode() + data
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        try:
            if rng.random() < 0.5:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
            if rng.random() < 0.25:
                sock.sendall(req[:rng.randint(0, len(req) - 1)])
                return
            sock.sendall(req)
            want, got = rng.randint(0, 3000), b""
            while len(got) < want:
                part = sock.recv(min(4096, want - len(got)))
                if not part:
                    break
                got += part
            # What arrived before the hang-up is a prefix of a 200 or 429 reply.
            assert got[:9] == b"HTTP/1.1 "[:len(got)], got[:100]
            if len(got) >= 12:
                assert int(got[9:12]) in (200, 429), got[:300]
        finally:
            sock.close()

    def oversized(self, rng):
        path = rng.choice(["/v1/chat/completions", "/v1/responses", "/v1/completions", "/api/chat",
                           "/api/generate"])
        size = rng.randint(MAX_BODY + 1, 8 * MAX_BODY)
        body = '{"model":"%s","prompt":"' % MODEL_NAME
        body += "a" * (size - len(body) - 2) + '"}'
        r = requests.post(self.url + path, data=body, timeout=60,
                          headers={"Content-Type": "application/json"})
        check_error(path, r.status_code, r.headers, r.content, 413)

    def malformed(self, rng):
        path = rng.choice(["/v1/chat/completions", "/v1/responses", "/v1/completions", "/api/chat",
                           "/api/generate", "/api/show"])
        good = json.dumps({"model": MODEL_NAME, "messages": user(rng), "prompt": "x", "input": "x"})
        body = rng.choice([
            good[:rng.randint(0, len(good) - 1)].encode(),  # truncated: never valid JSON
            bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))) + b"\x00{",
            b'{"model": "\xff\xfe"}',
            b"[1,2,3]", b"42", b'"text"', b"null", b"{,}", b'{"model":NaN}',
        ])
        r = requests.post(self.url + path, data=body, timeout=60,
                          headers={"Content-Type": "application/json"})
        check_error(path, r.status_code, r.headers, r.content, 400)

    WRONG = [
        ("/v1/chat/completions", {"model": MODEL_NAME, "messages": "hi"}, "messages"),
        ("/v1/chat/completions", {"model": MODEL_NAME, "messages": [{"role": "user", "content": "x"}],
                                  "max_tokens": "10"}, "max_tokens"),
        ("/v1/chat/completions", {"model": MODEL_NAME, "messages": [{"role": "user", "content": "x"}],
                                  "temperature": "warm"}, "temperature"),
        ("/v1/chat/completions", {"model": MODEL_NAME, "messages": [{"role": "user", "content": "x"}],
                                  "stream": 1}, "stream"),
        ("/v1/chat/completions", {"model": MODEL_NAME, "messages": [{"role": 7, "content": "x"}]},
         "messages[0].role"),
        ("/v1/chat/completions", {"model": MODEL_NAME, "messages": [{"role": "user", "content": "x"}],
                                  "tools": [{"type": "function"}]}, "tools[0].function"),
        ("/v1/chat/completions", {"model": 5, "messages": []}, "model"),
        ("/v1/responses", {"model": MODEL_NAME, "input": 5}, "input"),
        ("/v1/responses", {"model": MODEL_NAME, "input": "x", "max_output_tokens": [1]},
         "max_output_tokens"),
        ("/v1/completions", {"model": MODEL_NAME, "prompt": "x", "max_tokens": 1.5}, "max_tokens"),
        ("/api/chat", {"model": MODEL_NAME, "messages": {"role": "user"}}, None),
        ("/api/chat", {"model": MODEL_NAME, "messages": [{"role": "user", "content": "x"}],
                       "think": "very"}, None),
        ("/api/generate", {"model": MODEL_NAME, "prompt": 5}, None),
        ("/api/generate", {"model": MODEL_NAME, "prompt": "x", "options": {"num_predict": "x"}}, None),
    ]

    def wrong_types(self, rng):
        path, body, param = rng.choice(self.WRONG)
        r = requests.post(self.url + path, json=body, timeout=60)
        check_error(path, r.status_code, r.headers, r.content, 400, param)

    def unknown_route(self, rng):
        name = "".join(rng.choice("abcxyz09-") for _ in range(rng.randint(1, 12)))
        method, path = rng.choice([("GET", f"/v1/nope-{name}"), ("POST", f"/api/nope-{name}"),
                                   ("PUT", f"/nope-{name}"), ("DELETE", "/v1/models"),
                                   ("GET", "/v1/chat/completions"), ("GET", "/api/chat")])
        r = requests.request(method, self.url + path, timeout=60, data=b"{}")
        check_error(path, r.status_code, r.headers, r.content, 404)

    def cheap_get(self, rng):
        path = rng.choice(["/v1/models", "/api/tags", "/api/version", "/metrics"])
        r = requests.get(self.url + path, timeout=60)
        assert r.status_code == 200, (path, r.text[:200])
        if path == "/v1/models":
            assert [m["id"] for m in r.json()["data"]] == [MODEL_NAME]
        elif path == "/api/tags":
            assert [m["name"] for m in r.json()["models"]] == [MODEL_NAME]
        elif path == "/api/version":
            assert r.json()["version"]
        else:
            assert "gptoss_sequences_running" in r.text


KINDS = {  # kind -> weight
    "openai_chat": 3, "openai_chat_stream": 3, "openai_chat_sse": 2, "openai_responses": 2,
    "openai_responses_sse": 2, "openai_tool_call": 2, "ollama_chat": 2, "ollama_stream": 2,
    "ollama_generate": 2, "disconnect": 4, "oversized": 1, "malformed": 2, "wrong_types": 2,
    "unknown_route": 1, "cheap_get": 1,
}


class Record:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency = collections.defaultdict(list)  # kind -> seconds of each request
        self.outcomes = collections.Counter()          # (kind, outcome) -> n
        self.unexpected = []                            # (kind, message)

    def add(self, kind, outcome, seconds, message=None):
        with self.lock:
            self.latency[kind].append(seconds)
            self.outcomes[(kind, outcome)] += 1
            if message is not None:
                self.unexpected.append((kind, message))


def drive(load, record, seconds, seed):
    names = list(KINDS)
    weights = [KINDS[k] for k in names]
    deadline = time.time() + seconds

    def client(i):
        rng = random.Random(seed * 1000 + i)
        first = names[i % len(names):] + names[:i % len(names)]  # every kind at least once
        try:
            while time.time() < deadline:
                kind = first.pop(0) if first else rng.choices(names, weights)[0]
                t0 = time.perf_counter()
                try:
                    getattr(load, kind)(rng)
                    outcome, msg = "ok", None
                except Rejected:
                    outcome, msg = "429", None
                except Exception as e:  # noqa: BLE001 - everything else is a finding
                    outcome, msg = "unexpected", f"{type(e).__name__}: {str(e)[:300]}"
                record.add(kind, outcome, time.perf_counter() - t0, msg)
        finally:
            load.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 300)
        assert not t.is_alive(), "a client thread hung"


class HealthPoller(threading.Thread):
    """GET /health every 100 ms with a 5 s limit; records every failure and the server's RSS."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.s = server
        self.stop_flag = threading.Event()
        self.latency, self.failures, self.rss_kb = [], [], []

    def run(self):
        with requests.Session() as sess:
            while not self.stop_flag.is_set():
                t0 = time.perf_counter()
                try:
                    r = sess.get(self.s.url + "/health", timeout=5)
                    if r.status_code != 200 or r.json()["status"] != "ok":
                        self.failures.append(f"{r.status_code} {r.text[:200]}")
                except Exception as e:  # noqa: BLE001
                    self.failures.append(f"{type(e).__name__}: {e}")
                self.latency.append(time.perf_counter() - t0)
                self.rss_kb.append(proc_status(self.s.proc.pid)["VmRSS"])
                self.stop_flag.wait(0.1)


def settle(server, seconds):
    """Wait until no sequence runs or waits, then past the keep-alive timeout (5 s) so that idle
    connections and their pool threads are gone."""
    wait_idle(server.url, "settle", timeout=60)
    time.sleep(seconds)
    return proc_status(server.proc.pid)


GREEDY = [("/v1/chat/completions", {"model": MODEL_NAME, "max_tokens": 16, "temperature": 0,
                                    "messages": [{"role": "user", "content": "Count to three."}]}),
          ("/api/generate", {"model": MODEL_NAME, "prompt": "Why?", "stream": False,
                             "options": {"num_predict": 16, "temperature": 0}})]


def greedy_outputs(url):
    out = []
    for path, body in GREEDY:
        r = requests.post(url + path, json=body, timeout=120)
        assert r.status_code == 200, r.text
        j = r.json()
        out.append(j["choices"][0]["message"] if "choices" in j else j["response"])
    return out


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else float("nan")


def test_soak_mixed_load(gptoss_bin):
    s = ServeProcess(gptoss_bin, "--max-running", "4", "--max-queue", "8", "--max-active", "12",
                     "--max-body-bytes", str(MAX_BODY))
    load = Load(s)
    health = HealthPoller(s)
    try:
        greedy_before = greedy_outputs(s.url)
        cold = proc_status(s.proc.pid)
        health.start()
        # Warm-up load: grows the allocator's per-thread arenas and the HTTP pool to their working
        # size, so that the leak check below compares like with like.
        warm_record = Record()
        drive(load, warm_record, min(15.0, max(5.0, SECONDS / 4)), seed=1)
        warm = settle(s, 6)
        record = Record()
        t0 = time.time()
        drive(load, record, SECONDS, seed=2)
        elapsed = time.time() - t0
        after = settle(s, 6)
        health.stop_flag.set()
        health.join(10)
        greedy_after = greedy_outputs(s.url)
        assert s.alive()
        t_stop = time.perf_counter()
        rc = s.stop()
        stop_seconds = time.perf_counter() - t_stop
    finally:
        health.stop_flag.set()
        s.stop()

    total = sum(record.outcomes.values())
    summary = {
        "seconds": round(elapsed, 1), "clients": CLIENTS, "requests": total,
        "by_kind": {k: {"n": len(v), "ok": record.outcomes[(k, "ok")],
                        "429": record.outcomes[(k, "429")],
                        "unexpected": record.outcomes[(k, "unexpected")],
                        "p50_ms": round(percentile(v, 0.5) * 1e3, 1),
                        "p99_ms": round(percentile(v, 0.99) * 1e3, 1)}
                    for k, v in sorted(record.latency.items())},
        "unexpected": (warm_record.unexpected + record.unexpected)[:50],
        "memory_kb": {"cold": cold, "after_warmup": warm, "after": after,
                      "peak_vmrss_during": max(health.rss_kb) if health.rss_kb else None},
        "health": {"polls": len(health.latency), "failures": health.failures[:20],
                   "p50_ms": round(percentile(health.latency, 0.5) * 1e3, 1),
                   "p99_ms": round(percentile(health.latency, 0.99) * 1e3, 1),
                   "max_ms": round(max(health.latency) * 1e3, 1)},
        "sigterm": {"rc": rc, "seconds": round(stop_seconds, 2)},
    }
    print(json.dumps(summary, indent=1))
    if os.environ.get("GPTOSS_SOAK_REPORT"):
        with open(os.environ["GPTOSS_SOAK_REPORT"], "w") as f:
            json.dump(summary, f, indent=1)

    assert not warm_record.unexpected and not record.unexpected, summary["unexpected"]
    assert not health.failures, health.failures[:20]
    ok = record.outcomes + warm_record.outcomes
    assert all(ok[(k, "ok")] > 0 for k in KINDS), ok
    assert greedy_after == greedy_before, "the same greedy request changed after the load"
    # Leak check. RssAnon after the main load may exceed its level after the warm-up load by
    # 16 MiB at most: malloc keeps freed chunks cached per arena (glibc: up to 8 arenas per core,
    # each trimmed only past its top), which the warm-up has already grown; what remains is noise
    # of a few MiB, plus the /v1/responses store (~5-10 KiB a response; only the continued ones
    # are stored here). A leak of 1 KiB per request over this load's thousands of requests is already
    # several MiB, so growth past 16 MiB is a leak, not the allocator.
    # Under ASan (scripts/test.sh's asan stage sets GPTOSS_TEST_SANITIZER=address) RssAnon measures
    # the sanitizer: freed blocks wait in its quarantine (256 MiB by default) instead of returning to
    # malloc, so these bounds are checked by the release stage; the asan stage checks memory errors.
    if os.environ.get("GPTOSS_TEST_SANITIZER") != "address":
        assert after["RssAnon"] <= warm["RssAnon"] + 16 * 1024, summary["memory_kb"]
        # And against the cold start: the working set of a loaded server stays bounded.
        assert after["RssAnon"] <= cold["RssAnon"] * 1.5 + 64 * 1024, summary["memory_kb"]
    assert rc == 0 and stop_seconds < 5, summary["sigterm"]
