#!/usr/bin/env python3
"""Decode as a fraction of the read bandwidth measured around each rep (cpu_vs_llamacpp.sh BRACKET=K).

usage: bench/peers/bracketed.py BRACKET_TSV --bytes-per-token B [--moved 0.15]
BRACKET_TSV lines, in time order: "bw TIME BEST MEDIAN BEST_1T BEST_2M BEST_1T_2M" (a bandwidth
measurement, GB/s: best and median pass on the run's threads, best on 1 thread, over 4 KB pages,
then the best on the run's threads and on 1 thread over 2 MB pages) and "run TIME LABEL TOK_S" (a
decode rep). Each rep's fraction = tok/s x bytes per token / mean(best before, best after), over 4
KB pages (read_bandwidth's default) and over 2 MB pages, with the spread |before - after| / mean (the larger
of the two page sizes'); reps whose spread exceeds --moved (the bus changed during the rep) are
marked and left out of the "steady" statistics. Standard library only.
"""
import argparse
import statistics

from summarize import fmt  # bench/peers/summarize.py, beside this script


def parse(path):
    """[(kind, time, fields...)] from the file, in order."""
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if parts and parts[0] in ("bw", "run"):
                rows.append(parts)
    return rows


def reps(rows):
    """[(time, label, tok/s or None, {column: (before, after)})] for the bw columns 2 (best), 4 (1
    thread), 5 (best, 2 MB pages), 6 (1 thread, 2 MB pages)."""
    out = []
    for i, r in enumerate(rows):
        if r[0] != "run":
            continue
        before = next((rows[j] for j in range(i - 1, -1, -1) if rows[j][0] == "bw"), None)
        after = next((rows[j] for j in range(i + 1, len(rows)) if rows[j][0] == "bw"), None)
        tps = float(r[3]) if len(r) > 3 and r[3] else None
        val = lambda b, k: float(b[k]) if b is not None and len(b) > k and b[k] else None
        out.append((r[1], r[2], tps, {k: (val(before, k), val(after, k)) for k in (2, 4, 5, 6)}))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tsv")
    ap.add_argument("--bytes-per-token", type=float, required=True)
    ap.add_argument("--moved", type=float, default=0.15)
    a = ap.parse_args()
    rs = reps(parse(a.tsv))
    gb = a.bytes_per_token / 1e9
    print(f"bracketed decode: bytes/token {gb:.3f} GB; fraction = tok/s x bytes / mean(bandwidth before, after); "
          f"spread = |before - after| / mean, the larger of 4 KB and 2 MB pages' (> {100 * a.moved:.0f}%: the bus moved during the rep, marked *)\n")
    print("| time | engine | tg t/s | GB/s decoded | bw before / after | spread | fraction | "
          "bw 2 MB pages before / after | fraction (2 MB) | 1 thread before / after (4 KB; 2 MB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    by = {}
    for t, label, tps, bw in rs:
        frac = {}
        spread = None
        for k in (2, 5):
            b0, b1 = bw[k]
            if tps is not None and b0 and b1:
                frac[k] = tps * gb / ((b0 + b1) / 2)
        if 2 in frac:
            spread = max(abs(b0 - b1) / ((b0 + b1) / 2) for b0, b1 in (bw[k] for k in (2, 5)) if b0 and b1)
            by.setdefault(label, []).append((frac[2], frac.get(5), spread <= a.moved, tps))
        mark = "" if spread is None or spread <= a.moved else " *"
        pct = lambda f: fmt(None if f is None else 100 * f, ".1f") + "%"
        print(f"| {t} | {label} | {fmt(tps)} | {fmt(None if tps is None else tps * gb)} | "
              f"{fmt(bw[2][0])} / {fmt(bw[2][1])} | {fmt(None if spread is None else 100 * spread, '.0f')}% | "
              f"{pct(frac.get(2))}{mark} | {fmt(bw[5][0])} / {fmt(bw[5][1])} | {pct(frac.get(5))} | "
              f"{fmt(bw[4][0])} / {fmt(bw[4][1])}; {fmt(bw[6][0])} / {fmt(bw[6][1])} |")
    print()
    def stats(fr):
        return f"median {100 * statistics.median(fr):.1f}% (min {100 * min(fr):.1f}, max {100 * max(fr):.1f})"

    for label, v in by.items():
        tp = [x[3] for x in v]
        line = f"{label}: {len(v)} reps, tg {statistics.mean(tp):.2f} tok/s mean"
        for name, rows in (("all reps", v), ("steady reps", [x for x in v if x[2]])):
            if not rows:
                line += f"; no {name[:-1]}"
                continue
            line += f"; {name} ({len(rows)}): 4 KB {stats([x[0] for x in rows])}"
            f2 = [x[1] for x in rows if x[1] is not None]
            if f2:
                line += f", 2 MB {stats(f2)}"
        print(line)

if __name__ == "__main__":
    main()
