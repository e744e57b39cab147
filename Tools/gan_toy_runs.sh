#!/usr/bin/env bash
# The toy 2-D mode-collapse runs of docs/GAN_TOY.md.
#
#   Tools/gan_toy_runs.sh [--seeds N] [--out DIR]            the first table: on ring8 and grid25, five seeds each
#       of plain NS, hinge + spectral norm and NS with --pack 2, at the settings the toy defaults had before the
#       grid25 recipe (Tools/gan_toy_plain.json: the MLP pair without batch norm; 5,000 steps of batch 256, lr 2e-4
#       constant, β 0, 0.9), pinned by flags so that the table stays reproducible;
#   Tools/gan_toy_runs.sh --defaults [--seeds N] [--out DIR] the grid25 seed table at today's toy defaults (the
#       4 × 400 batch-norm MLP generator, 60,000 steps of batch 128, lr 1e-3 with a cosine decay):
#       `gpugen train gan --data toy:grid25 --loss hinge --spectral-norm`
#       and the same with plain NS (`--loss ns`), scored with `gpugen sample --seed S`.
#
# Each run is scored on 2,500 samples of its EMA generator (modes covered by both rules, high-quality share, KL
# from uniform); the table goes to stdout (markdown) and one scatter plot per setting (seed 0) to docs/.
set -euo pipefail
cd "$(dirname "$0")/.."
# Small GEMMs: one OpenBLAS thread is faster than two contending ones (2.5× on a loaded 2-core machine).
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
seeds=5
out=runs/gan-toy
defaults=0
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --defaults) defaults=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
# GPUGEN_BIN: a gpugen binary to use (default: build the release one).
bin=${GPUGEN_BIN:-.build/release/gpugen}
[ -n "${GPUGEN_BIN:-}" ] || swift build -c release >/dev/null
mkdir -p "$out"
# line DATA SETTING SEED: the markdown row of `gpugen sample`'s score line on stdin, e.g.
# toy:grid25: modes 25/25 hit, 24/25 over 10% share, HQ 91.2%, KL 0.0123, n 2500
row() {
  sed -E "s#^toy:[a-z0-9]+: modes ([0-9]+/[0-9]+) hit, ([0-9]+/[0-9]+) over 10% share, HQ ([0-9.]+%), KL ([0-9.]+), n [0-9]+#| $1 | $2 | $3 | \1 | \2 | \3 | \4 |#"
}
echo "| data | setting | seed | modes (≥ 1 HQ sample) | modes (≥ 10 % of fair share) | high-quality share | KL(modes ‖ uniform) |"
echo "|---|---|---|---|---|---|---|"
if [ "$defaults" = 1 ]; then
  declare -A flags=([hinge-sn]="--loss hinge --spectral-norm" [ns]="--loss ns")
  for setting in hinge-sn ns; do
    for seed in $(seq 0 $((seeds - 1))); do
      dir="$out/grid25-defaults-$setting-$seed"
      if [ ! -e "$dir/done" ]; then
        rm -rf "$dir"
        # shellcheck disable=SC2086
        $bin train gan --data toy:grid25 ${flags[$setting]} --seed "$seed" --out "$dir" --device cpu \
          >"$dir.log" 2>&1 || { echo "run $dir failed; see $dir.log" >&2; exit 1; }
        touch "$dir/done"
      fi
      plot="$dir/scatter.png"
      [ "$seed" = 0 ] && plot="docs/gan_toy_grid25_defaults_${setting}.png"
      $bin sample --model "$dir/checkpoint" --n 2500 --seed "$seed" --out "$plot" --device cpu | grep "^toy:" \
        | row grid25 "$setting, defaults" "$seed"
    done
  done
  exit 0
fi
# The settings of the first table (the toy defaults before the grid25 recipe), pinned.
plain="--config Tools/gan_toy_plain.json --steps 5000 --batch-size 256 --lr 2e-4 --lr-schedule constant --betas 0,0.9"
declare -A flags=([ns]="--loss ns" [hinge-sn]="--loss hinge --spectral-norm" [ns-pack2]="--loss ns --pack 2")
for data in ring8 grid25; do
  for setting in ns hinge-sn ns-pack2; do
    for seed in $(seq 0 $((seeds - 1))); do
      dir="$out/$data-$setting-$seed"
      if [ ! -e "$dir/done" ]; then
        rm -rf "$dir"
        # shellcheck disable=SC2086
        $bin train gan --data "toy:$data" $plain ${flags[$setting]} --seed "$seed" --out "$dir" --device cpu \
          >"$dir.log" 2>&1 || { echo "run $dir failed; see $dir.log" >&2; exit 1; }
        touch "$dir/done"
      fi
      plot="$dir/scatter.png"
      [ "$seed" = 0 ] && plot="docs/gan_toy_${data}_${setting}.png"
      $bin sample --model "$dir/checkpoint" --n 2500 --out "$plot" --device cpu | grep "^toy:" \
        | row "$data" "$setting" "$seed"
    done
  done
done
