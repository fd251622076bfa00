"""`gptoss serve --kv-tokens N`: the paged KV cache's pool is shared by the running sequences.
A pool smaller than the context is the largest request the server takes (400 past it, like the
context), and more concurrent requests than the pool holds at full context all finish with the
answers they give alone."""
import concurrent.futures

import pytest
import requests

from server_util import MODEL_NAME, ServeProcess

CHAT = "/v1/chat/completions"


def ask(url, text, max_tokens=12):
    r = requests.post(url + CHAT, timeout=120, json={
        "model": MODEL_NAME, "messages": [{"role": "user", "content": text}],
        "max_tokens": max_tokens, "temperature": 0})
    return r


@pytest.fixture(scope="module")
def server(gptoss_bin):
    # --ctx 4096 (ServeProcess), 8 running, a pool of 512 tokens (32 pages of 16).
    s = ServeProcess(gptoss_bin, "--kv-tokens", "512", "--max-running", "8", "--device", "cpu",
                     "--threads", "2")
    yield s
    s.stop()


def test_a_request_past_the_pool_is_400(server):
    r = ask(server.url, "hi", max_tokens=600)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "context_length_exceeded"
    assert "maximum context length is 512" in err["message"]


def test_concurrent_requests_share_the_pool_and_answer_as_alone(server):
    texts = [f"question number {i}: what is {i} plus {i}?" for i in range(8)]
    alone = []
    for t in texts:
        r = ask(server.url, t)
        assert r.status_code == 200, r.text
        alone.append(r.json()["choices"][0]["message"])
    with concurrent.futures.ThreadPoolExecutor(len(texts)) as pool:
        together = list(pool.map(lambda t: ask(server.url, t), texts))
    for i, r in enumerate(together):
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"] == alone[i], i
    assert server.alive()
