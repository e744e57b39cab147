#!/usr/bin/env bash
# The reference ConvVAE (batch 64 training step; encode + decode at batch 256): gpugen vs PyTorch (2 threads),
# alternated round by round so both see the same machine load; prints the best of each and the ratios
# (> 1 means gpugen is faster).
#   Benchmarks/vae_side_by_side.sh [--rounds N] [-- extra gpugen bench train args, e.g. --device all]
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
  .build/release/gpugen bench train --family vae --json "$@" | tee -a "$out/gpugen.jsonl"
  echo "== round $r/$rounds: pytorch" >&2
  python3 Benchmarks/vae_pytorch.py --threads 2 | tee -a "$out/torch.jsonl"
done
python3 - "$out" <<'PY'
import json, os, sys
d = sys.argv[1]
rows = lambda n: [json.loads(l) for l in open(os.path.join(d, n)) if l.startswith("{")]
g, t = rows("gpugen.jsonl"), rows("torch.jsonl")
bt = max(t, key=lambda r: r["steps_per_s"]); bti = max(t, key=lambda r: r["images_per_s"])
print(f"\n== reference ConvVAE: best of {len(t)} rounds each; PyTorch {bt['threads']} threads")
print(f"{'pytorch':14} step {bt['ms_per_step']:7.2f} ms   encode+decode {bti['images_per_s']:9.0f} images/s")
by = {}
for r in g:
    by.setdefault(r["device"], []).append(r)
cpu_step = None
for dev, rs in by.items():
    s = max(rs, key=lambda r: r["steps_per_s"]); i = max(rs, key=lambda r: r["images_per_s"])
    if dev == "cpu": cpu_step = s["steps_per_s"]
    print(f"{dev:14} step {s['ms_per_step']:7.2f} ms   encode+decode {i['images_per_s']:9.0f} images/s"
          f"   -> step {s['steps_per_s'] / bt['steps_per_s']:.2f}x, encode+decode {i['images_per_s'] / bti['images_per_s']:.2f}x PyTorch"
          + (f", {s['steps_per_s'] / cpu_step:.2f}x the CPU backend's step" if cpu_step and dev != "cpu" else ""))
PY
