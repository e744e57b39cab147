#!/usr/bin/env bash
# Class accuracy and KID against the guidance scale s (gpugen evaluate --json, DDIM 20 steps, CPU), for each
# x̂₀ bounding: the default (for s > 1 gpugen's guided default, printed in evaluate's knobs), diffusers'
# clip_sample (--scheduler-clipping), --no-clip, and dynamic thresholding (ratio 0.995, sample_max_value 1.5
# and 2).
# Usage: Benchmarks/guidance_sweep.sh [--n N] [--scales "1 1.5 2 3 5"] [--modes all|default]
#                                     [-- extra gpugen evaluate flags]
set -euo pipefail
n=1000
scales="1 1.5 2 3 5"
modes=all
while [[ $# -gt 0 ]]; do
  case "$1" in
    --n) n="$2"; shift 2 ;;
    --scales) scales="$2"; shift 2 ;;
    --modes) modes="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
bin="${GPUGEN:-$(dirname "$0")/../.build/release/gpugen}"
if [[ "$modes" == all ]]; then
  bounding=("" "--scheduler-clipping" "--no-clip" "--thresholding --sample-max-value 1.5"
    "--thresholding --sample-max-value 2")
else
  bounding=("")
fi
echo "| x̂₀ bounding | s | accuracy | KID ×1000 ± std | FID | precision | recall |"
echo "|---|---|---|---|---|---|---|"
for b in "${bounding[@]}"; do
  for s in $scales; do
    # shellcheck disable=SC2086
    "$bin" evaluate --n "$n" --device cpu --json --guidance-scale "$s" $b "$@" 2>/dev/null | python3 -c "
import json, sys
o = json.load(sys.stdin)
print(f\"| ${b:-default} ({o['x0_bounding']}) | $s | {o['accuracy']:.4f} | {o['kid']:.1f} ± {o['kid_std']:.1f} | {o['fid']:.2f} | {o['precision']:.3f} | {o['recall']:.3f} |\")"
  done
done
