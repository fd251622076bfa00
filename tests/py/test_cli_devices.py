"""`--device` on generate: cpu-fast is accepted and greedy decoding follows the exact path's tokens
(the exact path is itself checked against transformers); an unknown device is named."""
import json

import pytest

from cli_util import DATE, make_tiny_model, run


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("devices"))


def greedy(gptoss_bin, model, device):
    r = run(gptoss_bin, "generate", model, "--json", "--raw", "-p", "The quick brown fox", "-n", "12",
            "--temperature", "0", "--current-date", DATE, "--threads", "2", "--device", device)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_cpu_fast_generates_the_exact_paths_greedy_tokens(gptoss_bin, model):
    exact = greedy(gptoss_bin, model, "cpu")
    fast = greedy(gptoss_bin, model, "cpu-fast")
    assert fast["completion_ids"] == exact["completion_ids"]
    assert exact["completion_ids"]


def test_unknown_device_is_named(gptoss_bin, model):
    r = run(gptoss_bin, "generate", model, "-p", "hi", "--device", "tpu")
    assert r.returncode != 0 and "unknown device 'tpu'" in r.stderr
