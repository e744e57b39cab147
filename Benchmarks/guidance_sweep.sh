#!/usr/bin/env bash
# Class accuracy and KID against the guidance scale s (gpugen evaluate --json, DDIM 20 steps, CPU).
# Usage: Benchmarks/guidance_sweep.sh [--n N] [--scales "1 1.5 2 3 5"] [-- extra gpugen evaluate flags]
set -euo pipefail
n=1000
scales="1 1.5 2 3 5"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --n) n="$2"; shift 2 ;;
    --scales) scales="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
bin="${GPUGEN:-$(dirname "$0")/../.build/release/gpugen}"
echo "| s | accuracy | KID ± std | FID | precision | recall |"
echo "|---|---|---|---|---|---|"
for s in $scales; do
  "$bin" evaluate --n "$n" --device cpu --json --guidance-scale "$s" "$@" 2>/dev/null | python3 -c "
import json, sys
o = json.load(sys.stdin)
print(f\"| $s | {o['accuracy']:.4f} | {o['kid']:.1f} ± {o['kid_std']:.1f} | {o['fid']:.2f} | {o['precision']:.3f} | {o['recall']:.3f} |\")"
done
