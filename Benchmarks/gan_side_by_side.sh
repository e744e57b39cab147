#!/usr/bin/env bash
# The reference DCGAN (28x28x1, z 64; training step = one D step + one G step at batch 64; sampling at batch 256):
# gpugen vs PyTorch (2 threads, Benchmarks/gan_pytorch.py), alternated round by round so both see the same machine
# load; prints the best of each and the ratios (> 1 means gpugen is faster), per gpugen device.
#   Benchmarks/gan_side_by_side.sh [--rounds N] [-- extra gpugen bench train args, e.g. --device all]
# On a loaded machine (other jobs on the 2 cores) PyTorch's OpenMP threads spin-wait and its 2-thread step can be
# ~5x slower than when idle; run with OMP_WAIT_POLICY=PASSIVE in the environment to measure a fair PyTorch there
# (it is inherited by gan_pytorch.py; gpugen's OpenBLAS is pthreads-based and ignores it).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
swift build -c release >/dev/null
out=$(mktemp -d)
for r in $(seq 1 "$rounds"); do
  echo "== round $r/$rounds: gpugen" >&2
  .build/release/gpugen bench train --family gan --json "$@" | tee -a "$out/gpugen.jsonl"
  echo "== round $r/$rounds: pytorch" >&2
  python3 Benchmarks/gan_pytorch.py --threads 2 | tee -a "$out/torch.jsonl"
done
python3 - "$out" <<'PY'
import json, os, sys
d = sys.argv[1]
rows = lambda n: [json.loads(l) for l in open(os.path.join(d, n)) if l.startswith("{")]
g, t = rows("gpugen.jsonl"), rows("torch.jsonl")
if not g or not t:
    sys.exit(f"no JSON lines from {'gpugen' if not g else 'pytorch'}")
bt = max(t, key=lambda r: r["steps_per_s"]); bts = max(t, key=lambda r: r["sample_images_per_s"])
print(f"\n== reference DCGAN: best of {len(t)} rounds each; PyTorch {bt['threads']} threads; "
      f"training batch {bt['batch']}, sampling batch {bts['sample_batch']}")
print(f"{'pytorch':14} step {bt['ms_per_step']:7.2f} ms   sampling {bts['sample_images_per_s']:9.0f} images/s"
      f"   (G {bt['parameters_g']:,} / D {bt['parameters_d']:,} parameters)")
by = {}
for r in g:
    by.setdefault(r["device"], []).append(r)
cpu_step = cpu_sample = None
if "cpu" in by:
    cpu_step = max(r["steps_per_s"] for r in by["cpu"])
    cpu_sample = max(r["sample_images_per_s"] for r in by["cpu"])
for dev, rs in by.items():
    s = max(rs, key=lambda r: r["steps_per_s"]); i = max(rs, key=lambda r: r["sample_images_per_s"])
    print(f"{dev:14} step {s['ms_per_step']:7.2f} ms   sampling {i['sample_images_per_s']:9.0f} images/s"
          f"   -> step {s['steps_per_s'] / bt['steps_per_s']:.2f}x, sampling "
          f"{i['sample_images_per_s'] / bts['sample_images_per_s']:.2f}x PyTorch"
          + (f"; {s['steps_per_s'] / cpu_step:.2f}x / {i['sample_images_per_s'] / cpu_sample:.2f}x the CPU backend"
             if cpu_step and dev != "cpu" else ""))
    notes = []
    if (s.get("parameters_g"), s.get("parameters_d")) != (bt["parameters_g"], bt["parameters_d"]):
        notes.append(f"parameters G {s.get('parameters_g')} / D {s.get('parameters_d')} differ from PyTorch's")
    if s.get("batch") != bt["batch"] or i.get("sample_batch") != bts["sample_batch"]:
        notes.append(f"batch {s.get('batch')} / sample_batch {i.get('sample_batch')} differ from PyTorch's")
    for n in notes:
        print(f"{'':14} warning: {n}")
PY
