"""Faults of the machine under a running gptoss: a model file truncated while it is mapped (a
clear fatal error naming the file and offset, exit status 74, never SIGBUS and a core dump), a
model file replaced by rename while mapped (the old mapping stays valid: service goes on)."""
import os
import shutil
import subprocess
import time

import pytest
import requests

from server_util import MODEL_NAME, ServeProcess, tiny_model_dir

EXIT_MAPPED_FILE_CHANGED = 74  # kMappedFileChangedExitCode (src/core/mapped_file.h)


@pytest.fixture
def model_copy(tmp_path):
    d = tmp_path / "tiny"
    shutil.copytree(tiny_model_dir(), d)
    return d


def chat(url, n=4):
    return requests.post(url + "/v1/chat/completions", timeout=60, json={
        "model": MODEL_NAME, "max_tokens": n, "messages": [{"role": "user", "content": "hi"}]})


def serve_on(gptoss_bin, model_dir, monkeypatch):
    import server_util
    monkeypatch.setattr(server_util, "tiny_model_dir", lambda: str(model_dir))
    return ServeProcess(gptoss_bin)


def assert_fatal_message(stderr, weights, size):
    assert f"gptoss: fatal: {weights} changed on disk while in use: reading byte " in stderr, stderr
    assert f" of the {size} bytes mapped when it was opened failed" in stderr, stderr
    assert "the file is now 4096 bytes" in stderr, stderr


def test_serve_model_truncated_while_mapped_exits_with_a_clear_error(gptoss_bin, model_copy,
                                                                   monkeypatch):
    weights = model_copy / "model.safetensors"
    size = weights.stat().st_size
    s = serve_on(gptoss_bin, model_copy, monkeypatch)
    try:
        assert chat(s.url).status_code == 200
        os.truncate(weights, 4096)  # keeps the header, drops every tensor
        with pytest.raises(requests.RequestException):
            chat(s.url)  # the forward pass reads a page that is gone
        rc = s.proc.wait(timeout=30)
        stderr = s.proc.stderr.read()
    finally:
        s.stop()
    assert rc == EXIT_MAPPED_FILE_CHANGED, (rc, stderr)  # an exit, not a signal (rc < 0)
    assert_fatal_message(stderr, weights, size)
    assert not any(p.startswith("core") for p in os.listdir(model_copy.parent))


def test_generate_model_truncated_mid_generation(gptoss_bin, model_copy):
    weights = model_copy / "model.safetensors"
    size = weights.stat().st_size
    p = subprocess.Popen([os.path.abspath(gptoss_bin), "generate", str(model_copy), "--raw", "-p", "Hello",
                          "-n", "8000", "--ctx", "8192", "--temperature", "1", "--seed", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=model_copy.parent)
    try:
        assert p.stdout.read(1), "generate wrote nothing"
        os.truncate(weights, 4096)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == EXIT_MAPPED_FILE_CHANGED, (p.returncode, err[-2000:])
    assert_fatal_message(err.decode(), weights, size)
    assert not any(n.startswith("core") for n in os.listdir(model_copy.parent))


def test_serve_model_replaced_by_rename_keeps_serving(gptoss_bin, model_copy, monkeypatch):
    """Replacing a file the usual way (write a new one, rename it over) leaves the mapped inode
    intact: the server keeps answering from the weights it loaded."""
    weights = model_copy / "model.safetensors"
    s = serve_on(gptoss_bin, model_copy, monkeypatch)
    try:
        before = requests.post(s.url + "/v1/chat/completions", timeout=60, json={
            "model": MODEL_NAME, "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "user", "content": "same?"}]}).json()
        tmp = model_copy / "model.safetensors.new"
        with open(tmp, "wb") as f:
            f.write(b"\0" * 4096)
        os.replace(tmp, weights)
        after = requests.post(s.url + "/v1/chat/completions", timeout=60, json={
            "model": MODEL_NAME, "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "user", "content": "same?"}]}).json()
        assert after["choices"][0]["message"] == before["choices"][0]["message"]
        time.sleep(0.2)
        assert s.alive()
    finally:
        assert s.stop() == 0
