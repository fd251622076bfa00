"""A client that hangs up at any byte of its request or of the reply frees everything it held.

For each generating route (streaming and not, OpenAI and Ollama) the client hangs up after sending
part of the request, or after reading 0, 1, ... bytes of the reply: inside the status line, at the
end of the headers, inside the first chunk, and at offsets spread over a long stream, with a
normal close (FIN) or a reset (RST). After each hang-up the engine must return to no running and
no queued sequence. The server runs with --max-running 2 --max-queue 0 --max-active 2, so a slot
leaked anywhere (an HTTP request slot, an engine sequence, a KV cache slot) shows at the end: two
full streams at once must both be admitted and complete."""
import concurrent.futures
import json
import socket
import struct

import pytest
import requests

from server_util import MODEL_NAME, ServeProcess, metric, wait_idle

MSG = [{"role": "user", "content": "Go on."}]
ROUTES = {  # route -> (path, body asking for n tokens)
    "chat_sse": ("/v1/chat/completions",
                 lambda n: {"model": MODEL_NAME, "stream": True, "max_tokens": n, "messages": MSG}),
    "chat_json": ("/v1/chat/completions",
                  lambda n: {"model": MODEL_NAME, "max_tokens": n, "messages": MSG}),
    "responses_sse": ("/v1/responses", lambda n: {"model": MODEL_NAME, "stream": True,
                                                  "max_output_tokens": n, "input": "Go on."}),
    "ollama_chat": ("/api/chat", lambda n: {"model": MODEL_NAME, "options": {"num_predict": n},
                                            "messages": MSG}),
    "ollama_generate": ("/api/generate", lambda n: {"model": MODEL_NAME, "stream": False,
                                                    "prompt": "Go on.", "options": {"num_predict": n}}),
}


def raw_request(path, body, extra=""):
    data = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"{extra}Content-Length: {len(data)}\r\n\r\n").encode() + data


def hang_up(port, request, send_bytes, read_bytes, reset):
    """Sends request[:send_bytes], reads up to read_bytes of the reply, closes. Returns the bytes
    read."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    got = b""
    try:
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.sendall(request[:send_bytes])
        while len(got) < read_bytes:
            part = sock.recv(min(65536, read_bytes - len(got)))
            if not part:
                break
            got += part
    finally:
        sock.close()
    return got


@pytest.fixture(scope="module")
def server(gptoss_bin):
    s = ServeProcess(gptoss_bin, "--max-running", "2", "--max-queue", "0", "--max-active", "2")
    yield s
    assert s.alive()
    assert s.stop() == 0


@pytest.mark.parametrize("route", list(ROUTES))
def test_hang_up_at_any_byte_frees_the_sequence(server, route):
    path, body = ROUTES[route]
    request = raw_request(path, body(400))
    header_end = request.index(b"\r\n\r\n") + 4
    # A full reply to the same request with few tokens locates the reply's header end.
    ref = hang_up(server.port, raw_request(path, body(4), "Connection: close\r\n"), 1 << 30, 1 << 20,
                  False)
    assert ref.startswith(b"HTTP/1.1 200"), ref[:200]
    reply_headers = ref.index(b"\r\n\r\n") + 4
    cases = []
    for n in (0, 1, header_end // 2, header_end - 1, header_end, header_end + 1, len(request) - 1):
        cases.append((n, 0))  # the request never completes: nothing may start
    for n in (0, 1, 9, 12, reply_headers // 2, reply_headers - 1, reply_headers, reply_headers + 1,
              reply_headers + 3, reply_headers + 40, reply_headers + 300, reply_headers + 3000):
        cases.append((len(request), n))
    before = metric(server.url, "gptoss_client_disconnects_total")
    for i, (send, read) in enumerate(cases):
        got = hang_up(server.port, request, send, read, reset=i % 2 == 1)
        assert got[:12] == b"HTTP/1.1 200"[:len(got)], (route, send, read, got[:100])
        wait_idle(server.url, f"{route}: hang-up after sending {send} and reading {read} bytes")
    # Every hang-up before the end of the reply's first bytes (the first nine reply offsets) came
    # while the generation ran: the server noticed each one and cancelled it.
    noticed = metric(server.url, "gptoss_client_disconnects_total") - before
    print(f"{route}: {len(cases)} hang-ups, {noticed:.0f} noticed mid-generation")
    assert noticed >= 9, noticed
    assert requests.get(server.url + "/health", timeout=10).json()["status"] == "ok"


def test_every_slot_is_free_after_the_hang_ups(server):
    # Runs after the parametrized hang-ups (same module server). Both slots of --max-active 2 /
    # --max-running 2 must be free: two full streams at once are admitted and complete.
    def stream(i):
        r = requests.post(server.url + "/v1/chat/completions", timeout=120, stream=True, json={
            "model": MODEL_NAME, "stream": True, "max_tokens": 30, "seed": i, "temperature": 1.0,
            "messages": [{"role": "user", "content": f"after {i}"}]})
        assert r.status_code == 200, r.text
        lines = [l for l in r.iter_lines() if l and not l.startswith(b":")]
        assert lines[-1] == b"data: [DONE]"
        chunks = [json.loads(l[6:]) for l in lines[:-1]]
        assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]) == 1
        return len(chunks)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        assert all(n > 1 for n in pool.map(stream, range(2)))
    wait_idle(server.url, "after two full streams")
