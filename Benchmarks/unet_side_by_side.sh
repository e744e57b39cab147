#!/usr/bin/env bash
# The reference UNet config (Benchmarks/unet/config.json) in gpugen on every device and in PyTorch
# (diffusers UNet2DModel, 2 threads, inference mode), alternated round by round (gpugen, PyTorch, gpugen, …)
# so that both see the same machine load; prints the best figure of each and the ratios.
#   Benchmarks/unet_side_by_side.sh [--quick] [--rounds N] [--device SPEC]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=3; runs=5; rounds=2; device=all
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) seconds=1; runs=2; rounds=1; shift ;;
    --rounds) rounds=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
swift build -c release >/dev/null
out=$(mktemp -d)
for r in $(seq 1 "$rounds"); do
  echo "== round $r/$rounds: gpugen" >&2
  .build/release/gpugen bench unet --json --seconds "$seconds" --device "$device" | tee -a "$out/gpugen.jsonl"
  echo "== round $r/$rounds: pytorch" >&2
  python3 Benchmarks/pytorch_unet_bench.py --runs "$runs" --sample-runs 1 | tee -a "$out/torch.jsonl"
done
python3 - "$out" "$rounds" <<'PY'
import json, os, sys
d, rounds = sys.argv[1], sys.argv[2]
g = [json.loads(l) for l in open(os.path.join(d, "gpugen.jsonl")) if l.startswith("{")]
t = [json.loads(l) for l in open(os.path.join(d, "torch.jsonl")) if l.startswith("{")]
# Best of the rounds: the lowest ms per evaluation, the highest images/s.
tev, tips = {}, None
for r in t:
    if r.get("what") == "unet_eval":
        tev[r["batch"]] = min(tev.get(r["batch"], float("inf")), r["ms"])
    elif r.get("what") == "dpmpp2m_sampling":
        tips = max(tips or 0, r["images_per_s"])
gev, gips = {}, {}
for r in g:
    if r["what"] == "unet_eval":
        k = (r["device"], r["batch"])
        gev[k] = min(gev.get(k, float("inf")), r["ms"])
    elif r["what"].startswith("dpmpp2m"):
        k = (r["device"], r["batch"])
        gips[k] = max(gips.get(k, 0), r["images_per_s"])
print(f"\n== gpugen vs PyTorch (2 threads), best of {rounds} alternated rounds each; >1 means gpugen is faster")
for (dev, b), ms in gev.items():
    if b in tev:
        print(f'{dev:9} UNet eval batch {b:3}: {ms:9.1f} ms vs {tev[b]:9.1f} ms  -> {tev[b] / ms:.2f}x')
for (dev, b), ips in gips.items():
    if tips:
        print(f'{dev:9} DPM++ 2M 20 steps batch {b}: {ips:.2f} vs {tips:.2f} images/s -> {ips / tips:.2f}x')
PY
