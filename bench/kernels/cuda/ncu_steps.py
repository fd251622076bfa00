#!/usr/bin/env python3
"""Sums an `ncu --csv --page raw` file (scripts/gpu/batched_profile.sh's metrics) per kernel and grid: launches,
duration, DRAM bytes read and their rate, registers, SM throughput and active warps. The kernel with the fewest
launches is taken to run once a step (the decode step's argmax); the rows after its first launch up to its last
are whole steps, and only those are summed, per step. Standard library only. usage: ncu_steps.py NCU.csv"""
import collections
import csv
import sys

TIME_NS = {"ns": 1.0, "nsecond": 1.0, "us": 1e3, "usecond": 1e3, "ms": 1e6, "msecond": 1e6, "s": 1e9, "second": 1e9}
BYTES = {"byte": 1.0, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9}


def num(s):
    try:
        return float(s.replace(",", ""))
    except ValueError:
        return float("nan")


def main():
    rows = list(csv.reader(open(sys.argv[1], newline="")))
    at = next(i for i, r in enumerate(rows) if "Kernel Name" in r)
    head, units = rows[at], rows[at + 1]
    col = {n: i for i, n in enumerate(head)}
    tu, bu = units[col["gpu__time_duration.sum"]], units[col["dram__bytes_read.sum"]]
    if tu not in TIME_NS or bu not in BYTES:
        sys.exit(f"{sys.argv[1]}: unknown units {tu!r} / {bu!r}")
    launches = []
    for r in rows[at + 2:]:
        if len(r) < len(head):
            continue
        # ncu writes e.g. "void unnamed>::moe_gemm_kernel<4, 2, ...>(unnamed>::Args)": the bare name.
        name = r[col["Kernel Name"]].removeprefix("void ").split("(")[0].split("<")[0].split("::")[-1]
        launches.append(dict(
            key=(name, r[col["launch__grid_size"]]),
            ns=num(r[col["gpu__time_duration.sum"]]) * TIME_NS[tu], rd=num(r[col["dram__bytes_read.sum"]]) * BYTES[bu],
            reg=r[col["launch__registers_per_thread"]],
            sm=num(r[col["sm__throughput.avg.pct_of_peak_sustained_elapsed"]]),
            warps=num(r[col["sm__warps_active.avg.pct_of_peak_sustained_active"]])))
    count = collections.Counter(x["key"][0] for x in launches)
    marker = min(count, key=count.get)
    marks = [i for i, x in enumerate(launches) if x["key"][0] == marker]
    if len(marks) < 2:
        sys.exit(f"{sys.argv[1]}: {marker} ran {len(marks)} time(s): no whole step in the window")
    window, steps = launches[marks[0] + 1:marks[-1] + 1], len(marks) - 1
    agg = collections.defaultdict(lambda: dict(n=0, ns=0.0, rd=0.0, sm=0.0, warps=0.0, reg=set()))
    for x in window:
        a = agg[x["key"]]
        a["n"] += 1
        for k in ("ns", "rd", "sm", "warps"):
            a[k] += x[k]
        a["reg"].add(x["reg"])
    total = sum(a["ns"] for a in agg.values())
    print(f"{sys.argv[1]}: {len(launches)} launches; {steps} step(s) between launches of {marker}, "
          f"{total / 1e3 / steps:.1f} us a step")
    print(f"{'kernel':<40} {'grid':>6} {'per step':>8} {'us/step':>9} {'share':>6} {'us each':>8} {'MB/step':>8} "
          f"{'GB/s':>6} {'SM%':>5} {'warps%':>6} regs")
    for (name, grid), a in sorted(agg.items(), key=lambda kv: -kv[1]["ns"]):
        print(f"{name[:40]:<40} {grid:>6} {a['n'] / steps:>8.0f} {a['ns'] / 1e3 / steps:>9.1f} "
              f"{100 * a['ns'] / total:>5.1f}% {a['ns'] / 1e3 / a['n']:>8.2f} {a['rd'] / 1e6 / steps:>8.1f} "
              f"{a['rd'] / a['ns']:>6.0f} {a['sm'] / a['n']:>5.1f} {a['warps'] / a['n']:>6.1f} {','.join(sorted(a['reg']))}")


if __name__ == "__main__":
    main()
