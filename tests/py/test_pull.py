"""`gptoss pull` against a loopback fake hub, with huggingface_hub itself as the oracle for the
cache layout: both tools fill a cache from the same fake endpoint and must produce the same tree,
and each must reuse the other's files without downloading them again."""

import hashlib
import os
import subprocess
import sys

import pytest

from fake_hub import FakeHub, Repo

pytest.importorskip("huggingface_hub")

REPO = "acme/tiny-model"


def blob(n, seed):
    out = bytearray()
    block = hashlib.sha256(seed.encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


FILES = {
    "config.json": b'{"model_type": "gpt_oss", "hidden_size": 64}\n',
    "README.md": b"# tiny\n",
    "tokenizer.json": b'{"version": "1.0"}\n' * 50,
    "model.safetensors": blob(3_000_000, "weights"),
    "original/model.safetensors": blob(400_000, "original"),
    "original/config.json": b'{"num_hidden_layers": 2}\n',
}


@pytest.fixture
def hub():
    h = FakeHub().start()
    h.add_repo(Repo(REPO, FILES))
    yield h
    h.stop()


def base_env(tmp_path, hub, cache):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HOME=str(tmp_path / "home"), HF_HOME=str(tmp_path / "hf_home"), HF_HUB_CACHE=str(cache),
               HF_ENDPOINT=hub.endpoint if hub else "http://127.0.0.1:9", HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_UPDATE_CHECK="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    return env


def pull(gptoss_bin, env, *args, **kw):
    return subprocess.run([gptoss_bin, "pull", *args], env=env, capture_output=True, text=True, timeout=120, **kw)


def hf_snapshot(env, repo=REPO, **kwargs):
    code = ("import sys, json\nfrom huggingface_hub import snapshot_download\n"
            f"print(snapshot_download({repo!r}, **json.loads(sys.argv[1])))")
    import json

    r = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


def tree(cache):
    """Everything under the repo folder plus CACHEDIR.TAG: files by content, symlinks by target."""
    out = {}
    for root, dirs, files in os.walk(cache):
        dirs[:] = [d for d in dirs if d != ".locks"]
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            p = os.path.join(root, name)
            rel = os.path.relpath(p, cache)
            if os.path.islink(p):
                out[rel] = "-> " + os.readlink(p)
            else:
                with open(p, "rb") as f:
                    out[rel] = hashlib.sha256(f.read()).hexdigest()
    return out


def snapshot_bytes(snap):
    got = {}
    for root, _, files in os.walk(snap):
        for name in files:
            p = os.path.join(root, name)
            with open(p, "rb") as f:
                got[os.path.relpath(p, snap)] = f.read()
    return got


def file_gets(hub):
    """Requests that transfer file bytes (GETs of /resolve or the CDN)."""
    return [r for r in hub.requests(method="GET") if r[0] == "cdn" or "/resolve/" in r[2]]


def test_pull_produces_the_huggingface_hub_tree(gptoss_bin, hub, tmp_path):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    r = pull(gptoss_bin, base_env(tmp_path, hub, ours), REPO, "--all")
    assert r.returncode == 0, r.stderr
    commit = hub.repos[REPO].commit
    snap = ours / "models--acme--tiny-model" / "snapshots" / commit
    assert r.stdout.strip() == str(snap)
    assert snapshot_bytes(snap) == FILES

    hf_path = hf_snapshot(base_env(tmp_path, hub, theirs))
    assert hf_path == str(theirs / "models--acme--tiny-model" / "snapshots" / commit)
    want = tree(theirs)
    assert want  # the oracle produced something
    assert tree(ours) == want
    # The layout details the comparison covers, spelled out.
    sha = hashlib.sha256(FILES["model.safetensors"]).hexdigest()
    assert want[f"models--acme--tiny-model/snapshots/{commit}/model.safetensors"] == f"-> ../../blobs/{sha}"
    assert (ours / "models--acme--tiny-model" / "refs" / "main").read_text() == commit
    assert (ours / "models--acme--tiny-model" / "trees" / f"{commit}.json").read_bytes() == (
        theirs / "models--acme--tiny-model" / "trees" / f"{commit}.json").read_bytes()


def test_default_pull_skips_alternate_weights(gptoss_bin, hub, tmp_path):
    cache = tmp_path / "c"
    r = pull(gptoss_bin, base_env(tmp_path, hub, cache), REPO)
    assert r.returncode == 0, r.stderr
    got = snapshot_bytes(r.stdout.strip())
    assert sorted(got) == ["README.md", "config.json", "model.safetensors", "tokenizer.json"]


def test_each_tool_reuses_the_others_files(gptoss_bin, hub, tmp_path):
    # huggingface_hub first, then gptoss: nothing is downloaded again.
    c1 = tmp_path / "c1"
    hf_snapshot(base_env(tmp_path, hub, c1))
    hub.clear_log()
    r = pull(gptoss_bin, base_env(tmp_path, hub, c1), REPO, "--all")
    assert r.returncode == 0, r.stderr
    assert file_gets(hub) == []
    assert "0 to download" in r.stderr

    # gptoss first, then huggingface_hub.
    c2 = tmp_path / "c2"
    r = pull(gptoss_bin, base_env(tmp_path, hub, c2), REPO, "--all")
    assert r.returncode == 0, r.stderr
    hub.clear_log()
    hf_snapshot(base_env(tmp_path, hub, c2))
    assert file_gets(hub) == []
    assert tree(c1) == tree(c2)


def test_blob_present_without_pointer_is_reused(gptoss_bin, hub, tmp_path):
    # A blob from another snapshot (e.g. fetched by huggingface-cli for an older commit) is linked, not fetched.
    cache = tmp_path / "c"
    env = base_env(tmp_path, hub, cache)
    hf_snapshot(env, allow_patterns=["model.safetensors"])
    snap = cache / "models--acme--tiny-model" / "snapshots" / hub.repos[REPO].commit
    (snap / "model.safetensors").unlink()
    hub.clear_log()
    r = pull(gptoss_bin, env, REPO, "--include", "model.safetensors")
    assert r.returncode == 0, r.stderr
    assert [g for g in file_gets(hub)] == []
    assert (snap / "model.safetensors").read_bytes() == FILES["model.safetensors"]


def test_resume_within_one_run(gptoss_bin, hub, tmp_path):
    hub.drop_after["model.safetensors"] = (1_000_000, 1)
    cache = tmp_path / "c"
    r = pull(gptoss_bin, base_env(tmp_path, hub, cache), REPO, "--include", "model.safetensors")
    assert r.returncode == 0, r.stderr
    ranges = [x[3].get("range") for x in hub.requests(server="cdn", method="GET")]
    assert ranges == [None, "bytes=1000000-"]
    assert snapshot_bytes(r.stdout.strip())["model.safetensors"] == FILES["model.safetensors"]


def test_resume_across_runs(gptoss_bin, hub, tmp_path):
    hub.drop_after["model.safetensors"] = (1_200_000, 100)  # every attempt dies at the same byte
    cache = tmp_path / "c"
    env = base_env(tmp_path, hub, cache)
    r = pull(gptoss_bin, env, REPO, "--include", "model.safetensors")
    assert r.returncode == 1
    assert "resume" in r.stderr
    sha = hashlib.sha256(FILES["model.safetensors"]).hexdigest()
    blobs = cache / "models--acme--tiny-model" / "blobs"
    part = blobs / f"{sha}.incomplete"
    assert part.stat().st_size == 1_200_000
    assert not (blobs / sha).exists()

    hub.drop_after.clear()
    hub.clear_log()
    r = pull(gptoss_bin, env, REPO, "--include", "model.safetensors")
    assert r.returncode == 0, r.stderr
    ranges = [x[3].get("range") for x in hub.requests(server="cdn", method="GET")]
    assert ranges == ["bytes=1200000-"]
    assert (blobs / sha).read_bytes() == FILES["model.safetensors"]
    assert not part.exists()


def test_expired_cdn_url_is_refreshed_once(gptoss_bin, hub, tmp_path):
    hub.cdn_forbid["model.safetensors"] = 1
    r = pull(gptoss_bin, base_env(tmp_path, hub, tmp_path / "c"), REPO, "--include", "model.safetensors")
    assert r.returncode == 0, r.stderr
    assert len(hub.requests(server="hub", method="HEAD", contains="model.safetensors")) == 2
    assert snapshot_bytes(r.stdout.strip())["model.safetensors"] == FILES["model.safetensors"]
    hub.cdn_forbid["model.safetensors"] = 2
    r = pull(gptoss_bin, base_env(tmp_path, hub, tmp_path / "d"), REPO, "--include", "model.safetensors")
    assert r.returncode == 1 and "HTTP 403 from the file host" in r.stderr


def test_server_ignoring_range_restarts(gptoss_bin, hub, tmp_path):
    hub.drop_after["model.safetensors"] = (700_000, 1)
    hub.ignore_range = True
    r = pull(gptoss_bin, base_env(tmp_path, hub, tmp_path / "c"), REPO, "--include", "model.safetensors")
    assert r.returncode == 0, r.stderr
    assert len(hub.requests(server="cdn", method="GET")) == 2
    assert snapshot_bytes(r.stdout.strip())["model.safetensors"] == FILES["model.safetensors"]


def test_checksum_mismatch_leaves_no_blob(gptoss_bin, hub, tmp_path):
    hub.corrupt.add("model.safetensors")
    cache = tmp_path / "c"
    r = pull(gptoss_bin, base_env(tmp_path, hub, cache), REPO)
    assert r.returncode == 1
    assert "checksum mismatch" in r.stderr and "model.safetensors" in r.stderr
    blobs = cache / "models--acme--tiny-model" / "blobs"
    sha = hashlib.sha256(FILES["model.safetensors"]).hexdigest()
    assert not (blobs / sha).exists()
    assert not (blobs / f"{sha}.incomplete").exists()
    snap = cache / "models--acme--tiny-model" / "snapshots" / hub.repos[REPO].commit
    assert not os.path.lexists(snap / "model.safetensors")


def test_oversized_body_is_cut_off(gptoss_bin, hub, tmp_path):
    hub.oversize.add("model.safetensors")
    cache = tmp_path / "c"
    r = pull(gptoss_bin, base_env(tmp_path, hub, cache), REPO, "--include", "model.safetensors")
    assert r.returncode == 1 and "more than the 3000000 bytes" in r.stderr
    assert [p.name for p in (cache / "models--acme--tiny-model" / "blobs").iterdir()] == []


def test_corrupt_regular_file_is_caught_by_its_git_blob_id(gptoss_bin, hub, tmp_path):
    hub.corrupt.add("config.json")
    cache = tmp_path / "c"
    r = pull(gptoss_bin, base_env(tmp_path, hub, cache), REPO)
    assert r.returncode == 1
    assert "checksum mismatch" in r.stderr and "git blob id" in r.stderr and "config.json" in r.stderr
    blob_id = hub.repos[REPO].entry("config.json")["oid"]
    blobs = cache / "models--acme--tiny-model" / "blobs"
    assert not (blobs / blob_id).exists() and not (blobs / f"{blob_id}.incomplete").exists()


def test_gated_repo_needs_token(gptoss_bin, hub, tmp_path):
    hub.add_repo(Repo("acme/gated", {"config.json": b"{}", "w.safetensors": blob(1000, "g")}, gated=True))
    env = base_env(tmp_path, hub, tmp_path / "c")
    r = pull(gptoss_bin, env, "acme/gated")
    assert r.returncode == 1
    assert "HF_TOKEN" in r.stderr and "license" in r.stderr and "401" in r.stderr

    r = pull(gptoss_bin, {**env, "HF_TOKEN": "wrong"}, "acme/gated")
    assert r.returncode == 1 and "refused" in r.stderr

    hub.clear_log()
    r = pull(gptoss_bin, {**env, "HF_TOKEN": hub.token}, "acme/gated")
    assert r.returncode == 0, r.stderr
    auth = {(x[0], x[1]): x[3].get("authorization") for x in hub.log}
    assert auth[("hub", "HEAD")] == f"Bearer {hub.token}"
    assert auth[("cdn", "GET")] is None  # the token never leaves the hub

    r = pull(gptoss_bin, env, "acme/gated", "--token", hub.token)  # --token works too (all cached now)
    assert r.returncode == 0, r.stderr


def test_gated_files_with_public_listing(gptoss_bin, hub, tmp_path):
    hub.add_repo(Repo("acme/gated-files", {"config.json": b"{}", "w.safetensors": blob(1000, "g")}, gated="files"))
    env = base_env(tmp_path, hub, tmp_path / "c")
    r = pull(gptoss_bin, env, "acme/gated-files")
    assert r.returncode == 1
    assert "access to acme/gated-files denied (HTTP 401)" in r.stderr and "HF_TOKEN" in r.stderr
    # The token `hf auth login` saves in $HF_HOME/token is used when HF_TOKEN is not set.
    token_file = tmp_path / "hf_home" / "token"
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(hub.token + "\n")
    r = pull(gptoss_bin, env, "acme/gated-files")
    assert r.returncode == 0, r.stderr


def test_missing_repo(gptoss_bin, hub, tmp_path):
    r = pull(gptoss_bin, base_env(tmp_path, hub, tmp_path / "c"), "acme/nope")
    assert r.returncode == 1
    assert "repository 'acme/nope' not found" in r.stderr
    r = pull(gptoss_bin, base_env(tmp_path, hub, tmp_path / "c"), REPO, "--revision", "v9")
    assert r.returncode == 1 and "revision not found" in r.stderr


def test_offline_message(gptoss_bin, tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    env = base_env(tmp_path, None, tmp_path / "c")
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{port}"
    r = pull(gptoss_bin, env, REPO)
    assert r.returncode == 1
    assert "offline" in r.stderr and f"127.0.0.1:{port}" in r.stderr


def test_hf_hub_offline(gptoss_bin, hub, tmp_path):
    cache = tmp_path / "c"
    env = base_env(tmp_path, hub, cache)
    r = pull(gptoss_bin, {**env, "HF_HUB_OFFLINE": "1"}, REPO)
    assert r.returncode == 1 and "HF_HUB_OFFLINE" in r.stderr
    assert hub.log == []
    r = pull(gptoss_bin, env, REPO)
    assert r.returncode == 0, r.stderr
    hub.clear_log()
    r2 = pull(gptoss_bin, {**env, "HF_HUB_OFFLINE": "1"}, REPO)
    assert r2.returncode == 0, r2.stderr
    assert r2.stdout == r.stdout
    assert hub.log == []


def test_include_and_exclude(gptoss_bin, hub, tmp_path):
    env = base_env(tmp_path, hub, tmp_path / "c")
    r = pull(gptoss_bin, env, REPO, "--include", "*.json")
    assert r.returncode == 0, r.stderr
    assert sorted(snapshot_bytes(r.stdout.strip())) == ["config.json", "original/config.json", "tokenizer.json"]
    env = base_env(tmp_path, hub, tmp_path / "d")
    r = pull(gptoss_bin, env, REPO, "--include", "original/", "--exclude", "*.json")
    assert r.returncode == 0, r.stderr
    assert sorted(snapshot_bytes(r.stdout.strip())) == ["original/model.safetensors"]
    r = pull(gptoss_bin, env, REPO, "--include", "*.gguf")
    assert r.returncode == 1 and "matches" in r.stderr


def test_paginated_listing(gptoss_bin, hub, tmp_path):
    hub.tree_page_size = 2
    r = pull(gptoss_bin, base_env(tmp_path, hub, tmp_path / "c"), REPO, "--all")
    assert r.returncode == 0, r.stderr
    assert snapshot_bytes(r.stdout.strip()) == FILES
    assert len(hub.requests(contains="/tree/")) > 2


def test_files_download_concurrently(gptoss_bin, hub, tmp_path):
    shards = {f"model-0000{i}-of-00004.safetensors": blob(200_000, f"shard{i}") for i in range(1, 5)}
    hub.add_repo(Repo("acme/sharded", {"config.json": b"{}", **shards}))
    hub.cdn_delay = 0.5
    r = pull(gptoss_bin, base_env(tmp_path, hub, tmp_path / "c"), "acme/sharded")
    assert r.returncode == 0, r.stderr
    assert snapshot_bytes(r.stdout.strip()) == {"config.json": b"{}", **shards}
    assert hub.cdn_max_active >= 2
    hub.cdn_max_active = 0
    r = pull(gptoss_bin, base_env(tmp_path, hub, tmp_path / "d"), "acme/sharded", "--max-workers", "1")
    assert r.returncode == 0, r.stderr
    assert hub.cdn_max_active == 1


def test_write_error_keeps_partial_for_resume(gptoss_bin, hub, tmp_path):
    import resource
    import signal

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_500_000, 1_500_000))

    cache = tmp_path / "c"
    env = base_env(tmp_path, hub, cache)
    r = pull(gptoss_bin, env, REPO, "--include", "model.safetensors", preexec_fn=limit)
    assert r.returncode == 1
    assert "File too large" in r.stderr and "resume" in r.stderr
    sha = hashlib.sha256(FILES["model.safetensors"]).hexdigest()
    part = cache / "models--acme--tiny-model" / "blobs" / f"{sha}.incomplete"
    kept = part.stat().st_size
    assert 0 < kept <= 1_500_000
    hub.clear_log()
    r = pull(gptoss_bin, env, REPO, "--include", "model.safetensors")
    assert r.returncode == 0, r.stderr
    assert [x[3].get("range") for x in hub.requests(server="cdn", method="GET")] == [f"bytes={kept}-"]
    assert not part.exists()
    assert snapshot_bytes(r.stdout.strip())["model.safetensors"] == FILES["model.safetensors"]


def test_progress_output(gptoss_bin, hub, tmp_path):
    r = pull(gptoss_bin, base_env(tmp_path, hub, tmp_path / "c"), REPO)
    assert r.returncode == 0, r.stderr
    assert "[1/4]" in r.stderr and "model.safetensors" in r.stderr
    assert "4/4 files, 3.0 MB downloaded in" in r.stderr
    r = pull(gptoss_bin, base_env(tmp_path, hub, tmp_path / "d"), REPO, "--quiet")
    assert r.returncode == 0 and r.stderr == ""


def test_usage_errors(gptoss_bin, tmp_path):
    env = base_env(tmp_path, None, tmp_path / "c")
    assert pull(gptoss_bin, env).returncode == 2
    r = pull(gptoss_bin, env, "not a/repo id")
    assert r.returncode == 2 and "repo id" in r.stderr


def test_progress_bar_on_a_terminal(gptoss_bin, hub, tmp_path):
    import pty

    master, slave = pty.openpty()
    p = subprocess.Popen([gptoss_bin, "pull", REPO], env=base_env(tmp_path, hub, tmp_path / "c"),
                         stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO once the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    out, _ = p.communicate(timeout=60)
    os.close(master)
    assert p.returncode == 0
    text = b"".join(chunks).decode()
    assert "\r" in text and "ETA" in text and "/s" in text and "[4/4]" in text
    assert "3.0 MB / 3.0 MB" in text  # the bar ends at the total


def test_disk_full(gptoss_bin, hub, tmp_path):
    """A real ENOSPC on a 2 MB tmpfs (needs root to mount; skipped otherwise)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        r = pull(gptoss_bin, base_env(tmp_path, hub, mnt / "cache"), REPO, "--include", "model.safetensors")
        assert r.returncode == 1
        assert "warning: 3.0 MB to download but only" in r.stderr
        assert "No space left on device" in r.stderr and "resume" in r.stderr
        sha = hashlib.sha256(FILES["model.safetensors"]).hexdigest()
        blobs = mnt / "cache" / "models--acme--tiny-model" / "blobs"
        assert (blobs / f"{sha}.incomplete").exists() and not (blobs / sha).exists()
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_huggingface_hub_reads_our_cache(gptoss_bin, hub, tmp_path):
    """huggingface_hub's own cache scanner and offline loaders accept what gptoss wrote."""
    cache = tmp_path / "c"
    env = base_env(tmp_path, hub, cache)
    r = pull(gptoss_bin, env, REPO, "--all")
    assert r.returncode == 0, r.stderr
    code = r"""
import json, sys
from huggingface_hub import scan_cache_dir, hf_hub_download, snapshot_download
info = scan_cache_dir(sys.argv[1])
repo, = info.repos
rev, = repo.revisions
print(json.dumps({
    "warnings": [str(w) for w in info.warnings], "repo_id": repo.repo_id, "commit": rev.commit_hash,
    "refs": sorted(rev.refs), "files": sorted(str(f.file_path.relative_to(rev.snapshot_path)) for f in rev.files),
    "size": rev.size_on_disk,
    "config": open(hf_hub_download("acme/tiny-model", "config.json", local_files_only=True)).read(),
    "snapshot": snapshot_download("acme/tiny-model", local_files_only=True),
}))
"""
    out = subprocess.run([sys.executable, "-c", code, str(cache)], env={**env, "HF_HUB_OFFLINE": "1"},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    import json

    got = json.loads(out.stdout)
    assert got["warnings"] == []
    assert got["repo_id"] == REPO and got["commit"] == hub.repos[REPO].commit and got["refs"] == ["main"]
    assert got["files"] == sorted(FILES)
    assert got["size"] == sum(len(v) for v in FILES.values())
    assert got["config"] == FILES["config.json"].decode()
    assert got["snapshot"] == r.stdout.strip()
