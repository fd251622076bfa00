#!/usr/bin/env bash
# On the GPU machine (NOTES v62): where v58's evict-first weight streams act. ncu, caches not flushed
# (--cache-control none), DRAM bytes read and duration of COUNT (600) consecutive launches after SKIP (1500) of the lab's
# default engine at one sequence (`batched 1`, graph + PDL), with the evict-first streams (gptoss_cuda_lab) and with
# plain loads (gptoss_cuda_lab_base); per kernel the mean over its launches. Binaries in .gpu-X, carried packed as
# .gpu-XZ/x.tar.xz. ncu serializes the kernels, so durations are not a step's; the bytes are the point.
. "$(dirname "$0")/env.sh" .gpu-X
begin_lab_call .gpu-XZ/x.tar.xz
ncu --version | tail -1
for b in gptoss_cuda_lab_base gptoss_cuda_lab; do
  echo "== ncu $b $(date -u +%T)"
  LAB_ENGINES=5 LAB_BATCHES=1 timeout 250 ncu --csv --page raw --cache-control none --launch-skip "${SKIP:-1500}" \
    --launch-count "${COUNT:-600}" --metrics gpu__time_duration.sum,dram__bytes_read.sum "$B/$b" batched 1 \
    > "$OUT/ncu-$b.csv" 2> "$OUT/ncu-$b.err" || { status=1; tail -5 "$OUT/ncu-$b.err"; }
  python3 - "$OUT/ncu-$b.csv" <<'PY' || status=1
import collections, csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
at = next(i for i, r in enumerate(rows) if "Kernel Name" in r)
head, units = rows[at], rows[at + 1]
col = {n: i for i, n in enumerate(head)}
scale = {"byte": 1, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9}
tscale = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3}
bu, tu = units[col["dram__bytes_read.sum"]], units[col["gpu__time_duration.sum"]]
agg = collections.defaultdict(lambda: [0, 0.0, 0.0])
for r in rows[at + 2:]:
    if len(r) < len(head):
        continue
    name = r[col["Kernel Name"]].removeprefix("void ").split("(")[0].split("<")[0].split("::")[-1]
    a = agg[name]
    a[0] += 1
    a[1] += float(r[col["dram__bytes_read.sum"]].replace(",", "")) * scale[bu]
    a[2] += float(r[col["gpu__time_duration.sum"]].replace(",", "")) * tscale[tu]
print(f"{'kernel':32s} {'launches':>8s} {'MB read':>10s} {'us':>8s}")
for name, (n, rd, us) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
    print(f"{name:32s} {n:8d} {rd / n / 1e6:10.3f} {us / n:8.2f}")
PY
done
date -u
exit $status
