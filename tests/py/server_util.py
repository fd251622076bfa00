"""Helpers for the `gptoss serve` tests: a tiny random checkpoint with the full 201088-token
vocabulary (made once per test run) and a server subprocess on a free port."""
import atexit
import functools
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL_NAME = "tiny-gpt-oss"
DATE = "2026-01-02"


@functools.lru_cache(maxsize=None)
def tiny_model_dir():
    d = tempfile.mkdtemp(prefix="gptoss-serve-")
    atexit.register(shutil.rmtree, d, True)
    out = os.path.join(d, "tiny")
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_tiny_checkpoint.py"), "--out", out,
                    "--vocab", "201088", "--seed", "7"], check=True, stdout=subprocess.DEVNULL)
    return out


class ServeProcess:
    """`gptoss serve` on 127.0.0.1 with --port 0; the port is read from its first stdout line."""

    def __init__(self, gptoss_bin, *extra, env=None):
        args = [gptoss_bin, "serve", tiny_model_dir(), "--port", "0", "--model-name", MODEL_NAME,
                "--current-date", DATE, "--ctx", "4096", *extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        line = self.proc.stdout.readline()
        if "listening on " not in line:
            self.proc.kill()
            err = self.proc.stderr.read()
            raise RuntimeError(f"gptoss serve did not start: {line!r} {err}")
        self.url = line.split("listening on ")[1].split()[0].rstrip("/")
        self.port = int(self.url.rsplit(":", 1)[1])
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("gptoss serve: /health never answered")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def metric(url, name):
    """One value of the server's Prometheus /metrics page."""
    for line in requests.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


def wait_idle(url, what="server", timeout=30):
    """Waits until no sequence runs or waits in the queue; fails naming `what` after `timeout` s."""
    deadline = time.time() + timeout
    while True:
        running, queued = metric(url, "gptoss_sequences_running"), metric(url, "gptoss_queue_depth")
        if running == 0 and queued == 0:
            return
        if time.time() > deadline:
            raise AssertionError(f"{what}: {running:g} sequences still running and {queued:g} queued "
                                 f"after {timeout} s")
        time.sleep(0.05)
