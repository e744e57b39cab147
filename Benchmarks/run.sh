#!/usr/bin/env bash
# Side-by-side kernel benchmarks in one run: gpugen's GEMM on every device against the device's FP32
# peak, OpenBLAS called directly, and CLBlast's SGEMM on the same OpenCL device; plus the steady-state
# elementwise loop. Ratios are printed at the end. Usage: Benchmarks/run.sh [sizes...] (default 1024 2048)
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("${@:-1024}")
[ $# -eq 0 ] && sizes=(1024 2048)
swift build -c release >/dev/null
bin=.build/release/gpugen
out=$(mktemp -d)
args=()
for s in "${sizes[@]}"; do args+=(--size "$s"); done

# One process per device, so OpenBLAS's spinning worker threads never compete with PoCL's.
devices=$("$bin" devices --json | python3 -c 'import json,sys; print(" ".join(d["spec"] for d in json.load(sys.stdin)))')
: > "$out/gpugen.jsonl"
for d in $devices; do
  echo "== gpugen bench gemm ${args[*]} --device $d"
  "$bin" bench gemm "${args[@]}" --device "$d" --json --seconds 2 | tee -a "$out/gpugen.jsonl"
done
echo "== CLBlast SGEMM on opencl:${REF_DEVICE:-0}"
Benchmarks/reference/run.sh --json "${sizes[@]}" | tee "$out/clblast.jsonl"
echo "== elementwise add, 4096 floats × 10000"
for d in cpu opencl:0; do "$bin" bench elementwise --device "$d" --count 4096 --iterations 10000 || true; done

python3 - "$out" <<'PY'
import json, sys, os
d = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(d, "gpugen.jsonl")) if l.strip()]
ref = {r["n"]: r for r in (json.loads(l) for l in open(os.path.join(d, "clblast.jsonl")) if l.strip())}
print("\n== ratios (same run)")
for r in rows:
    if r["impl"] != "gpugen" or r["m"] != r["n"] or r["n"] != r["k"]:
        continue
    line = f'{r["device"]:9} n={r["n"]:5}  gpugen {r["gflops"]:7.1f} GFLOP/s = {r["percent_of_peak"]:5.1f}% of peak'
    blas = [x for x in rows if x["impl"] == "openblas" and x["n"] == r["n"] and x["device"] == r["device"]]
    if blas:
        line += f'   vs OpenBLAS direct {blas[0]["gflops"]:.1f}: {r["gflops"] / blas[0]["gflops"]:.2f}x'
    if r["device"].startswith("opencl") and r["n"] in ref:
        line += f'   vs CLBlast {ref[r["n"]]["gflops"]:.1f}: {r["gflops"] / ref[r["n"]]["gflops"]:.2f}x'
        cpu = [x for x in rows if x["impl"] == "openblas" and x["n"] == r["n"]]
        if cpu:
            line += f'   vs OpenBLAS: {r["gflops"] / cpu[0]["gflops"]:.2f}x'
    print(line)
PY
