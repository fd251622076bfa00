#!/usr/bin/env python3
"""Runs a command and reports its peak resident memory, anonymous and file-backed separately.

    bench/tools/peak_memory.py -- build/bin/gptoss bench MODEL -p 16 -n 4 --device cpu --json

Samples /proc/<pid>/status every 20 ms (RssAnon, RssFile, VmHWM), passes the command's stdout and
stderr through, and prints one JSON line on stderr at the end. Mapped weights count as RssFile;
what the process allocated counts as RssAnon (deps-debian12.md §12).
"""
import json
import subprocess
import sys
import time


def read_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("RssAnon", "RssFile", "VmHWM", "VmRSS"):
                    out[k] = int(v.split()[0]) * 1024
    except OSError:
        pass
    return out


def main():
    argv = sys.argv[1:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        sys.exit("usage: peak_memory.py -- COMMAND ...")
    t0 = time.time()
    p = subprocess.Popen(argv)
    peak = {}
    while p.poll() is None:
        for k, v in read_status(p.pid).items():
            peak[k] = max(peak.get(k, 0), v)
        time.sleep(0.02)
    gib = {k: round(v / 2**30, 3) for k, v in peak.items()}
    print(json.dumps({"exit": p.returncode, "wall_s": round(time.time() - t0, 2),
                      "peak_gib": gib}), file=sys.stderr)
    sys.exit(p.returncode)


if __name__ == "__main__":
    main()
