#!/usr/bin/env bash
# Guided against plain sampling on one model (default: the bundled one), CPU, batch 64, DDIM 20 steps:
# alternates the two round by round (the machine's load drifts) and reports the best wall time of each and the
# ratio, and the same for the process CPU time (user + sys, less sensitive to other jobs). Usage: Benchmarks/guidance_speed.sh [--rounds N] [--scale s] [-- extra gpugen sample flags]
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
run() { # prints "wall cpu": the sampling seconds gpugen sample reports, and the process's user + sys seconds
  python3 - "$bin" sample --n 64 --batch-size 64 --steps 20 --device cpu --out "$tmp/g.png" "$@" <<'PY'
import re, resource, subprocess, sys
out = subprocess.run(sys.argv[1:], capture_output=True, text=True, check=True).stdout
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(re.search(r" images in ([0-9.]+) s ", out).group(1), f"{ru.ru_utime + ru.ru_stime:.3f}")
PY
}
bp=1e9; bg=1e9; cp=1e9; cg=1e9
for r in $(seq 1 "$rounds"); do
  read -r p pc <<<"$(run "$@")"
  read -r g gc <<<"$(run --guidance-scale "$scale" "$@")"
  echo "round $r: plain $p s (cpu $pc s), guided (s = $scale) $g s (cpu $gc s)"
  read -r bp bg cp cg <<<"$(python3 -c "print(min($bp, $p), min($bg, $g), min($cp, $pc), min($cg, $gc))")"
done
python3 -c "print(f'best wall: plain $bp s, guided $bg s, ratio {$bg / $bp:.3f}x; best cpu: plain $cp s, guided $cg s, ratio {$cg / $cp:.3f}x')"
