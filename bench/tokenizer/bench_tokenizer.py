#!/usr/bin/env python3
"""Tokenizer speed: gptoss (tokenize --bench) against tiktoken's o200k_harmony, single thread,
same text, same machine, one run. Writes a markdown table (default bench/results/tokenizer-cpu.md).

usage: .venv/bin/python bench/tokenizer/bench_tokenizer.py --bin build/bin/gptoss [--repeat 5]
       [--tokenizer-json PATH] [--out bench/results/tokenizer-cpu.md]

Speeds are MB of UTF-8 input per second of thread CPU time (the machine may be shared, so wall
time is also shown); each number is the best of --repeat runs.
"""
import argparse
import hashlib
import json
import os
import pathlib
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"


def corpora(tmp):
    sys.path.insert(0, str(ROOT / "tests/py"))
    import test_tokenizer as tt

    files = subprocess.run(["git", "ls-files", "*.md", "*.cc", "*.h", "*.py", "*.txt"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    code = "".join((ROOT / f).read_text(errors="replace") for f in sorted(files) if (ROOT / f).is_file())
    rng = random.Random(5)
    multi = []
    while sum(map(len, multi)) < 300_000:
        multi.append(rng.choice(tt.SCRIPTS + [tt.PROSE]) + rng.choice([" ", "\n", "\n\n"]))
    rnd = "".join(tt.random_unicode(rng, 200) for _ in range(1500))
    out = {}
    for name, text in [("repo text (English, code, markdown)", code), ("multilingual (16 scripts, emoji)", "".join(multi)),
                       ("random Unicode", rnd)]:
        p = tmp / (hashlib.sha1(name.encode()).hexdigest()[:8] + ".txt")
        p.write_bytes(text.encode("utf-8", "surrogatepass"))
        out[name] = (p, text)
    return out


def tiktoken_encoding(cache):
    shutil.copy(ROOT / "tests/data/o200k_base.tiktoken", cache / hashlib.sha1(URL.encode()).hexdigest())
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    import tiktoken

    t0, c0 = time.perf_counter(), time.thread_time()
    enc = tiktoken.get_encoding("o200k_harmony")
    return enc, (time.perf_counter() - t0) * 1e3, (time.thread_time() - c0) * 1e3, tiktoken.__version__


def best(fn, repeat):
    cpu, wall, res = 1e9, 1e9, None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.thread_time()
        res = fn()
        cpu, wall = min(cpu, time.thread_time() - c0), min(wall, time.perf_counter() - t0)
    return cpu, wall, res


def gptoss_bench(binary, path, repeat, extra=()):
    runs = []
    for _ in range(repeat):
        out = subprocess.run([binary, "tokenize", "--bench", "1", "--file", str(path), *extra], capture_output=True,
                             text=True, check=True).stdout
        runs.append(json.loads(out))
    return runs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(ROOT / "build/bin/gptoss"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--tokenizer-json", help="also time loading this tokenizer.json")
    ap.add_argument("--out", default=str(ROOT / "bench/results/tokenizer-cpu.md"))
    a = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp())
    enc, tt_load_wall, tt_load_cpu, tt_version = tiktoken_encoding(tmp)
    rows = []
    for name, (path, text) in corpora(tmp).items():
        nbytes = len(text.encode("utf-8", "surrogatepass"))
        e_cpu, e_wall, ids = best(lambda: enc.encode_ordinary(text), a.repeat)
        d_cpu, d_wall, raw = best(lambda: enc.decode_bytes(ids), a.repeat)
        g = gptoss_bench(a.bin, path, a.repeat)
        assert g[0]["tokens"] == len(ids), (name, g[0]["tokens"], len(ids))
        ge_cpu = min(r["encode_s_cpu"] for r in g)
        ge_wall = min(r["encode_s_wall"] for r in g)
        gd_cpu = min(r["decode_s_cpu"] for r in g)
        gd_wall = min(r["decode_s_wall"] for r in g)
        mb = nbytes / 1e6
        rows.append((name, nbytes, len(ids), mb / e_cpu, mb / ge_cpu, mb / e_wall, mb / ge_wall,
                     mb / d_cpu, mb / gd_cpu, mb / d_wall, mb / gd_wall))
    loads = []
    g = gptoss_bench(a.bin, rows and corpora(tmp)["random Unicode"][0], a.repeat)
    loads.append(("gptoss built-in (embedded o200k_base.tiktoken)", min(r["load_ms_cpu"] for r in g),
                  min(r["load_ms_wall"] for r in g)))
    g = gptoss_bench(a.bin, corpora(tmp)["random Unicode"][0], a.repeat,
                     ["--vocab", str(ROOT / "tests/data/o200k_base.tiktoken")])
    loads.append(("gptoss --vocab o200k_base.tiktoken", min(r["load_ms_cpu"] for r in g), min(r["load_ms_wall"] for r in g)))
    if a.tokenizer_json:
        g = gptoss_bench(a.bin, corpora(tmp)["random Unicode"][0], a.repeat, ["--vocab", a.tokenizer_json])
        loads.append(("gptoss --vocab tokenizer.json (27.9 MB)", min(r["load_ms_cpu"] for r in g),
                      min(r["load_ms_wall"] for r in g)))
    loads.append((f"tiktoken {tt_version} get_encoding('o200k_harmony') from the local cache (once)", tt_load_cpu,
                  tt_load_wall))

    cpu = "unknown"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    md = [f"# Tokenizer speed: gptoss vs tiktoken {tt_version} (o200k_harmony), one thread", "",
          f"- command: `{' '.join([pathlib.Path(sys.executable).name, *sys.argv])}`",
          f"- machine: {cpu}, {os.cpu_count()} vCPUs ({platform.machine()}, {platform.system()} {platform.release()}); "
          "shared with other jobs, so speeds are per second of thread CPU time (wall time in brackets)",
          f"- gptoss commit {commit}, Release build; tiktoken single-threaded `encode_ordinary` / `decode_bytes`; "
          f"best of {a.repeat} runs each; identical token counts checked", "",
          "| text | bytes | tokens | encode MB/s tiktoken | encode MB/s gptoss | speedup | decode MB/s tiktoken | "
          "decode MB/s gptoss | speedup |", "|---|---|---|---|---|---|---|---|---|"]
    for (name, nb, nt, te, ge, tew, gew, td, gd, tdw, gdw) in rows:
        md.append(f"| {name} | {nb:,} | {nt:,} | {te:.1f} ({tew:.1f}) | {ge:.1f} ({gew:.1f}) | {ge / te:.1f}x | "
                  f"{td:.0f} ({tdw:.0f}) | {gd:.0f} ({gdw:.0f}) | {gd / td:.1f}x |")
    md += ["", "Vocabulary load (ms, CPU (wall)):", "", "| what | CPU ms | wall ms |", "|---|---|---|"]
    for name, c, w in loads:
        md.append(f"| {name} | {c:.1f} | {w:.1f} |")
    pathlib.Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(a.out).write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
