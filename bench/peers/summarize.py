#!/usr/bin/env python3
"""Table and ratios for one gptoss-vs-llama.cpp run (bench/peers/*_vs_llamacpp.sh write the inputs).

usage: bench/peers/summarize.py DIR --bandwidth-gbs X [X ...] --bytes-per-token B [--what "read"]
DIR holds gptoss-<device>-<round>.json (`gptoss bench --json`) and llama-<round>.json
(`llama-bench -o json`). Roofline fraction = decode tok/s x bytes per token / bandwidth, with the
mean of the bandwidth measurements taken in the same run. Standard library only.
"""
import argparse
import json
import pathlib
import statistics


def peak_memory(f):
    """'RssAnon / RssFile GiB' from the .err file beside f (bench/tools/peak_memory.py's last line)."""
    e = f.with_suffix(".err")
    try:
        g = json.loads(e.read_text().strip().splitlines()[-1])["peak_gib"]
        return f"{g.get('RssAnon', 0):.2f} / {g.get('RssFile', 0):.2f}"
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return "-"


def load_runs(d):
    """[(engine, device, round, pp t/s, tg t/s, n_prompt, n_gen, peak memory)] from DIR's files."""
    runs = []
    for f in sorted(d.glob("gptoss-*.json")):
        device, rnd = f.stem[len("gptoss-"):].rsplit("-", 1)
        try:
            j = json.loads(f.read_text().strip().splitlines()[-1])
        except (ValueError, IndexError):
            print(f"{f.name}: no result")
            continue
        runs.append(("gptoss", device, rnd, j.get("prefill_tokens_per_s"), j.get("decode_tokens_per_s"),
                     j.get("n_prompt"), j.get("n_gen"), peak_memory(f)))
    for f in sorted(d.glob("llama-*.json")):
        rnd = f.stem.split("-", 1)[1]
        pp = tg = npp = ntg = None
        try:
            tests = json.loads(f.read_text())
        except ValueError:
            print(f"{f.name}: no result")
            continue
        for t in tests:
            if t["n_prompt"] > 0 and t["n_gen"] == 0:
                pp, npp = t["avg_ts"], t["n_prompt"]
            elif t["n_gen"] > 0 and t["n_prompt"] == 0:
                tg, ntg = t["avg_ts"], t["n_gen"]
        runs.append(("llama.cpp", tests[0].get("backends", "") if tests else "", rnd, pp, tg, npp, ntg,
                     peak_memory(f)))
    return runs


def fmt(x, spec=".2f"):
    return "-" if x is None else format(x, spec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--bandwidth-gbs", type=float, nargs="+", required=True)
    ap.add_argument("--bytes-per-token", type=float, required=True)
    ap.add_argument("--what", default="read")
    a = ap.parse_args()
    bw = statistics.mean(a.bandwidth_gbs) * 1e9
    runs = load_runs(pathlib.Path(a.dir))
    roof = bw / a.bytes_per_token
    print(f"{a.what} bandwidth (GB/s): {', '.join(f'{x:.2f}' for x in a.bandwidth_gbs)} -> mean {bw / 1e9:.2f}; "
          f"bytes/token {a.bytes_per_token / 1e9:.3f} GB -> roofline {roof:.2f} tok/s\n")
    print("| engine | device | round | pp t/s | tg t/s | tg x bytes / bw | peak RssAnon / RssFile GiB |")
    print("|---|---|---|---|---|---|---|")
    for eng, dev, rnd, pp, tg, npp, ntg, mem in runs:
        frac = None if tg is None else 100.0 * tg / roof
        print(f"| {eng} | {dev} | {rnd} | {fmt(pp)} (pp{npp}) | {fmt(tg)} (tg{ntg}) | {fmt(frac, '.1f')}% | {mem} |")
    llama = [r for r in runs if r[0] == "llama.cpp"]
    if not llama:
        return
    lpp = [r[3] for r in llama if r[3]]
    ltg = [r[4] for r in llama if r[4]]
    print()
    for dev in sorted({r[1] for r in runs if r[0] == "gptoss"}):
        mine = [r for r in runs if r[0] == "gptoss" and r[1] == dev]
        gpp = [r[3] for r in mine if r[3]]
        gtg = [r[4] for r in mine if r[4]]
        if gpp and lpp:
            print(f"gptoss {dev} / llama.cpp prefill: {statistics.mean(gpp):.2f} / {statistics.mean(lpp):.2f} = "
                  f"{statistics.mean(gpp) / statistics.mean(lpp):.2f}x")
        if gtg and ltg:
            print(f"gptoss {dev} / llama.cpp decode:  {statistics.mean(gtg):.2f} / {statistics.mean(ltg):.2f} = "
                  f"{statistics.mean(gtg) / statistics.mean(ltg):.2f}x")
    if ltg:
        print(f"llama.cpp decode at {100 * statistics.mean(ltg) / roof:.1f}% of the roofline")


if __name__ == "__main__":
    main()
