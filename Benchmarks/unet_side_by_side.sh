#!/usr/bin/env bash
# The reference UNet config (Benchmarks/unet/config.json) in gpugen on every device and in PyTorch
# (diffusers UNet2DModel, 2 threads, inference mode), in one run, with the ratios.
#   Benchmarks/unet_side_by_side.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release >/dev/null
out=$(mktemp -d)
seconds=3; runs=5
if [ "${1:-}" = "--quick" ]; then seconds=1; runs=2; fi
.build/release/gpugen bench unet --json --seconds "$seconds" | tee "$out/gpugen.jsonl"
python3 Benchmarks/pytorch_unet_bench.py --runs "$runs" --sample-runs 1 | tee "$out/torch.jsonl"
python3 - "$out" <<'PY'
import json, os, sys
d = sys.argv[1]
g = [json.loads(l) for l in open(os.path.join(d, "gpugen.jsonl")) if l.startswith("{")]
t = [json.loads(l) for l in open(os.path.join(d, "torch.jsonl")) if l.startswith("{")]
tev = {r["batch"]: r["ms"] for r in t if r.get("what") == "unet_eval"}
tips = next((r["images_per_s"] for r in t if r.get("what") == "dpmpp2m_sampling"), None)
print("\n== gpugen vs PyTorch (same run; >1 means gpugen is faster)")
for r in g:
    if r["what"] == "unet_eval" and r["batch"] in tev:
        print(f'{r["device"]:9} UNet eval batch {r["batch"]:3}: {r["ms"]:9.1f} ms vs {tev[r["batch"]]:9.1f} ms  -> {tev[r["batch"]] / r["ms"]:.2f}x')
    elif r["what"].startswith("dpmpp2m") and tips:
        print(f'{r["device"]:9} DPM++ 2M 20 steps batch {r["batch"]}: {r["images_per_s"]:.2f} vs {tips:.2f} images/s -> {r["images_per_s"] / tips:.2f}x')
PY
