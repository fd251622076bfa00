#!/usr/bin/env python3
"""How much of FILES the page cache holds in 2 MB folios: maps each file read-only, touches one byte
per 4 KB page (files not yet cached are read in), and prints the mapping's FilePmdMapped from
/proc/self/smaps (Linux): the share a process that maps the file now gets with 2 MB entries.
Decode streams weights slower over 4 KB pages (bench/results/cpu-20b-vs-llamacpp.md), so the
benchmark script logs this next to each gptoss round."""
import mmap
import os
import sys


def pmd_kb(path):
    real = os.path.realpath(path)
    with open("/proc/self/smaps") as f:
        inside, total = False, 0
        for line in f:
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
                inside = len(head) >= 6 and head[5] == real
            elif inside and line.startswith("FilePmdMapped:"):
                total += int(line.split()[1])
        return total


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: pmd_mapped.py FILE...")
    pmd = size = 0
    for path in sys.argv[1:]:
        with open(path, "rb") as f:
            n = os.fstat(f.fileno()).st_size
            if n == 0:
                continue
            m = mmap.mmap(f.fileno(), n, prot=mmap.PROT_READ)
            touched = sum(m[o] for o in range(0, n, 4096))  # noqa: F841 (faults every page in)
            pmd += pmd_kb(path)
            size += n >> 10
            m.close()
    print(f"{pmd / 1024:.0f} of {size / 1024:.0f} MB PMD-mapped ({100.0 * pmd / max(size, 1):.0f}%)")


if __name__ == "__main__":
    main()
