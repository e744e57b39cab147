#!/usr/bin/env bash
# Training-step speed of the reference UNet (Benchmarks/unet/config.json, batch 64): gpugen vs PyTorch (2 threads),
# run alternately (gpugen, torch, gpugen, torch) so both see the same machine load; prints the best of each and
# the ratio gpugen/torch of steps per second (>1 means gpugen trains faster).
#   Benchmarks/train_side_by_side.sh [--quick] [--batch-size N] [--rounds N] [-- extra gpugen bench train args]
set -euo pipefail
cd "$(dirname "$0")/.."
batch=64; rounds=2; torch_steps=10
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) torch_steps=3; shift ;;
    --batch-size) batch=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
swift build -c release >/dev/null
out=$(mktemp -d)
for r in $(seq 1 "$rounds"); do
  echo "== round $r/$rounds: gpugen" >&2
  .build/release/gpugen bench train --batch-size "$batch" --json "$@" | tee -a "$out/gpugen.jsonl"
  echo "== round $r/$rounds: pytorch" >&2
  python3 Benchmarks/pytorch_train_bench.py --batch "$batch" --threads 2 --steps "$torch_steps" | tee -a "$out/torch.jsonl"
done
python3 - "$out" <<'PY'
import json, os, sys
d = sys.argv[1]
def rows(name):
    rs = []
    for line in open(os.path.join(d, name)):
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            if "steps_per_s" in r:
                rs.append(r)
    return rs
g, t = rows("gpugen.jsonl"), rows("torch.jsonl")
if not g or not t:
    sys.exit(f"no steps_per_s in the {'gpugen' if not g else 'PyTorch'} output ({d})")
# gpugen may report several devices: the best run of each.
best_g = {}
for r in g:
    k = r.get("device", "gpugen")
    if k not in best_g or r["steps_per_s"] > best_g[k]["steps_per_s"]:
        best_g[k] = r
bt = max(t, key=lambda r: r["steps_per_s"])
print(f"\n== training step, batch {bt['batch']}: gpugen vs PyTorch ({bt['threads']} threads); best of {len(t)} runs each")
print(f"{'pytorch':12} {bt['steps_per_s']:8.3f} steps/s  {1 / bt['steps_per_s']:7.3f} s/step  peak RSS {bt.get('peak_rss_mb', float('nan')):.0f} MB")
for k, r in best_g.items():
    rss = r.get("peak_rss_mb")
    print(f"{k:12} {r['steps_per_s']:8.3f} steps/s  {1 / r['steps_per_s']:7.3f} s/step"
          + (f"  peak RSS {rss:.0f} MB" if rss is not None else "")
          + f"  -> {r['steps_per_s'] / bt['steps_per_s']:.2f}x PyTorch")
PY
