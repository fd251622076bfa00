"""Load on `gptoss serve`: dozens of concurrent streaming clients, some of which hang up early,
plus a burst beyond the request limit. Every stream that finishes is complete and well formed,
rejected requests get 429 with Retry-After, the server survives, every sequence is freed and the
server's memory returns near its baseline."""
import concurrent.futures
import http.client
import json
import os
import random

import requests

from server_util import MODEL_NAME, ServeProcess, wait_idle


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def one_client(port, i, hang_up_after):
    """Streams a chat completion; returns ('done', n_chunks), ('hung_up', n), or ('429', None)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    body = {"model": MODEL_NAME, "stream": True, "max_tokens": 40 + i % 7, "temperature": 1.0,
            "seed": i, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": f"client {i}"}]}
    conn.request("POST", "/v1/chat/completions", json.dumps(body),
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status == 429:
        assert int(resp.getheader("Retry-After")) >= 1
        assert json.loads(resp.read())["error"]["code"] == "rate_limit_exceeded"
        conn.close()
        return ("429", None)
    assert resp.status == 200
    chunks, done, finish, usage = 0, False, None, None
    while True:
        line = resp.readline()
        if not line:
            break
        line = line.strip()
        if not line or line.startswith(b":"):  # blank line / SSE comment (heartbeat)
            continue
        assert line.startswith(b"data: ")
        data = line[6:]
        if data == b"[DONE]":
            done = True
            break
        j = json.loads(data)
        assert j["object"] == "chat.completion.chunk"
        if j["choices"] and j["choices"][0]["finish_reason"]:
            assert finish is None
            finish = j["choices"][0]["finish_reason"]
        if j.get("usage"):
            usage = j["usage"]
        chunks += 1
        if hang_up_after is not None and chunks >= hang_up_after:
            conn.close()
            return ("hung_up", chunks)
    conn.close()
    assert done and finish in ("stop", "length") and usage is not None
    assert usage["completion_tokens"] <= body["max_tokens"]
    return ("done", chunks)


def test_concurrent_streams_disconnects_and_burst(gptoss_bin):
    s = ServeProcess(gptoss_bin, "--max-running", "8", "--max-queue", "16", "--max-active", "24")
    try:
        # Warm up so the baseline includes the buffers every generation needs.
        requests.post(s.url + "/v1/chat/completions", timeout=60, json={
            "model": MODEL_NAME, "max_tokens": 8,
            "messages": [{"role": "user", "content": "warm up"}]}).raise_for_status()
        baseline = rss_kb(s.proc.pid)
        rss = []
        for storm in range(2):
            rng = random.Random(storm)
            plans = [rng.choice([None, None, 2, 5]) for _ in range(48)]
            with concurrent.futures.ThreadPoolExecutor(max_workers=48) as pool:
                results = list(pool.map(lambda a: one_client(s.port, *a), enumerate(plans)))
            kinds = [r[0] for r in results]
            assert kinds.count("429") > 0, "48 clients at once must exceed --max-active 24"
            assert kinds.count("done") > 0 and kinds.count("hung_up") > 0
            assert s.alive()
            wait_idle(s.url, f"after storm {storm}")
            # After the storm the server still answers.
            r = requests.post(s.url + "/v1/chat/completions", timeout=60, json={
                "model": MODEL_NAME, "max_tokens": 4,
                "messages": [{"role": "user", "content": "ok?"}]})
            assert r.status_code == 200
            rss.append(rss_kb(s.proc.pid))
            print(f"storm {storm}: {kinds.count('done')} done, {kinds.count('hung_up')} hung up, "
                  f"{kinds.count('429')} got 429; RSS {baseline} kB before, {rss[-1]} kB after")
        # The first storm grows the allocator's per-thread arenas; a second one must not grow
        # memory again (nothing per request is kept). Not under ASan (GPTOSS_TEST_SANITIZER=address,
        # set by scripts/test.sh's asan stage): there RSS holds the sanitizer's quarantine of freed
        # blocks (256 MiB by default); the release stage checks these bounds.
        if os.environ.get("GPTOSS_TEST_SANITIZER") != "address":
            assert rss[0] < baseline * 1.25 + 32 * 1024, (baseline, rss)
            assert rss[1] < rss[0] + 8 * 1024, (baseline, rss)
    finally:
        s.stop()


def test_connection_burst_while_the_server_is_not_scheduled(gptoss_bin):
    """A burst of clients that connect while the server's accept thread does not run (a loaded
    machine: CI's sanitizer stage once saw a reset under the 48-client storm above) all complete
    their TCP handshake in the kernel's accept queue and are served once the server runs again.
    With a listen backlog of 5 (httplib 0.11's) the connections beyond it stay half-open: their
    SYNs are dropped or retried for seconds, and the kernel may reset them."""
    import signal
    import socket
    import time

    n = 64
    s = ServeProcess(gptoss_bin, "--max-active", "24")
    socks = []
    try:
        s.proc.send_signal(signal.SIGSTOP)
        try:
            t0 = time.time()
            for i in range(n):
                try:
                    socks.append(socket.create_connection(("127.0.0.1", s.port), timeout=0.5))
                except OSError as e:
                    raise AssertionError(
                        f"connection {i} of {n} did not complete in 0.5 s while the server was "
                        f"stopped ({e!r}): the listen backlog is too small") from e
            connect_s = time.time() - t0
            for c in socks:
                c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            time.sleep(1.0)  # the requests wait in the kernel while the server is stopped
        finally:
            s.proc.send_signal(signal.SIGCONT)
        statuses = []
        for c in socks:
            c.settimeout(60)
            data = b""
            while b"\r\n" not in data:
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
            statuses.append(data.split(b"\r\n", 1)[0])
        assert statuses == [b"HTTP/1.1 200 OK"] * n, statuses
        assert s.alive()
        print(f"{n} connections made in {connect_s:.3f} s while stopped; all answered 200")
    finally:
        for c in socks:
            c.close()
        s.stop()
