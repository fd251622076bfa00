"""Faults of the machine under a running gptoss: a model file truncated while it is mapped (a
clear fatal error naming the file and offset, exit status 74, never SIGBUS and a core dump), a
model file replaced by rename while mapped (the old mapping stays valid: service goes on), and a
context or batch that does not fit in memory (refused before allocating, with the numbers and the
option to lower)."""
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


# Runs argv[2:] and writes "exit-status peak-RSS-KiB" to argv[1]. A small middle process, because
# Linux carries a process's peak RSS over from the one that spawned it (the child of a 700 MB pytest
# reports ru_maxrss >= 700 MB); the grandchild of this small process reports only its own.
_MEASURE = """import os, subprocess, sys
p = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(p.pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}")
"""


def run_measured(args, timeout=60, tmp_dir="/tmp"):
    """Runs a command to its end; returns (exit status, stdout, stderr, its peak RSS in KiB)."""
    import sys
    import tempfile
    with tempfile.NamedTemporaryFile("r", dir=tmp_dir, suffix=".rusage") as res:
        p = subprocess.Popen([sys.executable, "-c", _MEASURE, res.name, *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            p.communicate()
            raise AssertionError(f"{args[1]} did not end in {timeout} s")
        assert p.returncode == 0, (p.returncode, err)
        rc, peak_kb = (int(v) for v in res.read().split())
    return rc, out, err, peak_kb


def test_serve_refuses_a_kv_cache_over_max_memory_before_allocating(gptoss_bin):
    # The tiny model keeps 2 KiB per position per sequence (2 full layers x 2 kv heads x 64 x f32
    # keys and values): 131072 x 8 sequences is 2 GiB, over the 1 GiB allowed.
    rc, out, err, peak_kb = run_measured([gptoss_bin, "serve", tiny_model_dir(), "--port", "0",
                                          "--ctx", "131072", "--max-running", "8",
                                          "--max-memory", "1G"])
    assert rc == 1, (rc, out, err)
    assert "listening" not in out
    assert ("not enough memory for a context of 131072 tokens x 8 sequence(s): the KV cache needs "
            "2.0 GiB and activations about ") in err, err
    assert "but 1.0 GiB is available (--max-memory)" in err, err
    assert "Lower --ctx or --max-running." in err, err
    # The context it proposes does fit: the server starts with it.
    fits = int(err.split("at most --ctx ")[1].split()[0])
    assert 16 <= fits < 131072
    s = ServeProcess(gptoss_bin, "--ctx", str(fits), "--max-running", "8", "--max-memory", "1G")
    try:
        assert chat(s.url).status_code == 200
    finally:
        assert s.stop() == 0
    assert peak_kb < 400 * 1024, peak_kb  # the refusal came before the KV cache, not after


def test_absurd_batch_is_refused_against_available_memory(gptoss_bin):
    # 100000 sequences at the full context: ~25 TiB of KV cache, more than any machine here has.
    rc, out, err, peak_kb = run_measured([gptoss_bin, "serve", tiny_model_dir(), "--port", "0",
                                          "--ctx", "131072", "--max-running", "100000"])
    assert rc == 1, (rc, out, err)
    assert "not enough memory for a context of 131072 tokens x 100000 sequence(s)" in err, err
    assert "TiB" in err and "is available (" in err, err
    assert "out of memory allocating" not in err  # refused before any allocation was tried
    assert peak_kb < 400 * 1024, peak_kb


def test_generate_refuses_a_context_over_max_memory(gptoss_bin):
    rc, out, err, peak_kb = run_measured([gptoss_bin, "generate", tiny_model_dir(), "-p", "hi",
                                          "--ctx", "131072", "--max-memory", "64M"])
    assert rc == 1, (rc, out, err)
    assert "x 1 sequence(s): the KV cache needs 256.5 MiB" in err, err
    assert "64.0 MiB is available (--max-memory)" in err and "Lower --ctx." in err, err
    rc, out, err, _ = run_measured([gptoss_bin, "generate", tiny_model_dir(), "-p", "hi", "-n", "2",
                                    "--ctx", "4096", "--max-memory", "64M"])
    assert rc == 0, err
    rc, out, err, _ = run_measured([gptoss_bin, "generate", tiny_model_dir(), "-p", "hi",
                                    "--max-memory", "lots"])
    assert rc != 0 and "--max-memory: 'lots' is not a byte count" in err, err
