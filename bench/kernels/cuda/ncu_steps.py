#!/usr/bin/env python3
"""Aggregates an `ncu --csv --page raw` file (scripts/gpu/batched_profile.sh's metrics) by kernel: launches, total
and mean duration, DRAM bytes read and the rate they were read at, grid, registers, SM throughput. The window is
cut to whole steps when a kernel that runs once a step (the one with the fewest launches) repeats.
Standard library only. usage: ncu_steps.py NCU.csv"""
import csv
import collections
import sys


def num(s):
    try:
        return float(s.replace(",", ""))
    except ValueError:
        return float("nan")


def main():
    rows = list(csv.reader(open(sys.argv[1], newline="")))
    at = next(i for i, r in enumerate(rows) if "Kernel Name" in r)
    head, units, data = rows[at], rows[at + 1], rows[at + 2:]
    col = {n: i for i, n in enumerate(head)}
    scale = {"usecond": 1e3, "msecond": 1e6, "nsecond": 1.0, "second": 1e9}
    tunit = scale.get(units[col["gpu__time_duration.sum"]], 1.0)
    bunit = {"byte": 1, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9}.get(units[col["dram__bytes_read.sum"]], 1)
    agg = collections.OrderedDict()
    total_ns = 0.0
    for r in data:
        if len(r) < len(head):
            continue
        name = r[col["Kernel Name"]].removeprefix("void ").split("(")[0].split("<")[0]
        ns = num(r[col["gpu__time_duration.sum"]]) * tunit
        rd = num(r[col["dram__bytes_read.sum"]]) * bunit
        a = agg.setdefault(name, dict(n=0, ns=0.0, rd=0.0, sm=0.0, occ=0.0, grid=set(), reg=set()))
        a["n"] += 1
        a["ns"] += ns
        a["rd"] += rd
        a["sm"] += num(r[col["sm__throughput.avg.pct_of_peak_sustained_elapsed"]])
        a["occ"] += num(r[col["sm__warps_active.avg.pct_of_peak_sustained_active"]])
        a["grid"].add(r[col["launch__grid_size"]])
        a["reg"].add(r[col["launch__registers_per_thread"]])
        total_ns += ns
    steps = min(a["n"] for a in agg.values())
    print(f"{sys.argv[1]}: {sum(a['n'] for a in agg.values())} launches, {total_ns / 1e3:.1f} us in all; "
          f"the rarest kernel ran {steps} times (per-step columns divide by it)")
    print(f"{'kernel':<44} {'launches':>8} {'us/step':>9} {'share':>6} {'us each':>8} {'GB/s':>7} {'MB/step':>8} "
          f"{'SM%':>5} {'warps%':>6}  grid / regs")
    for name, a in sorted(agg.items(), key=lambda kv: -kv[1]["ns"]):
        print(f"{name[:44]:<44} {a['n']:>8} {a['ns'] / 1e3 / steps:>9.1f} {100 * a['ns'] / total_ns:>5.1f}% "
              f"{a['ns'] / 1e3 / a['n']:>8.2f} {a['rd'] / max(a['ns'], 1):>7.0f} {a['rd'] / 1e6 / steps:>8.1f} "
              f"{a['sm'] / a['n']:>5.1f} {a['occ'] / a['n']:>6.1f}  {','.join(sorted(a['grid']))[:30]} / "
              f"{','.join(sorted(a['reg']))}")
    print(f"sum per step: {total_ns / 1e3 / steps:.1f} us")


if __name__ == "__main__":
    main()
