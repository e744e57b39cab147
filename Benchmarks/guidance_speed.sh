#!/usr/bin/env bash
# Guided against plain sampling on one model (default: the bundled one), CPU, batch 64, DDIM 20 steps:
# alternates the two round by round (the machine's load drifts) and reports the best wall time of each and the
# ratio. Usage: Benchmarks/guidance_speed.sh [--rounds N] [--scale s] [-- extra gpugen sample flags]
set -euo pipefail
rounds=5
scale=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --scale) scale="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
bin="${GPUGEN:-$(dirname "$0")/../.build/release/gpugen}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
run() { # prints the sampling seconds gpugen sample reports
  "$bin" sample --n 64 --batch-size 64 --steps 20 --device cpu --out "$tmp/g.png" "$@" 2>/dev/null |
    sed -n 's/.* images in \([0-9.]*\) s .*/\1/p'
}
best_plain=1e9
best_guided=1e9
for r in $(seq 1 "$rounds"); do
  p="$(run "$@")"
  g="$(run --guidance-scale "$scale" "$@")"
  echo "round $r: plain $p s, guided (s = $scale) $g s"
  best_plain="$(python3 -c "print(min($best_plain, $p))")"
  best_guided="$(python3 -c "print(min($best_guided, $g))")"
done
python3 -c "print(f'best: plain $best_plain s, guided $best_guided s, ratio {$best_guided / $best_plain:.3f}x')"
