import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def gptoss_bin():
    path = os.environ.get("GPTOSS_BIN", str(ROOT / "build-test" / "bin" / "gptoss"))
    if not os.path.exists(path):
        pytest.fail(f"gptoss binary not found at {path}: build it first (scripts/test.sh does)")
    return path


@pytest.fixture(scope="session")
def root():
    return ROOT


@pytest.fixture(scope="session")
def enc():
    """openai-harmony's gpt-oss encoding, the oracle for prompts and parsed messages (a module may
    define its own `enc`, as test_tokenizer does for tiktoken)."""
    from cli_util import harmony_encoding
    return harmony_encoding()
