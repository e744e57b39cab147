#!/usr/bin/env bash
# Data-parallel scaling on one machine: training steps/s of the reference UNet (Benchmarks/unet/config.json,
# global batch 64) with P = 1 process × 2 threads against P = 2 processes × 1 thread (mpirun), run alternately
# (P=1, P=2, P=1, P=2, …) so both see the same machine load; each round's rate is the median step time of
# log.csv after the first 2 steps, and the best round of each is reported with the ratio P=2 / P=1 (≥ 1: the
# all-reduce costs less than two processes gain). Then the all-reduce bandwidth on loopback at the model's
# gradient size and at the default bucket size (gpugen bench allreduce).
#   Benchmarks/mpi_scaling.sh [--steps N] [--rounds N] [--batch-size N] [--json FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=8; rounds=2; batch=64; json=""
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --batch-size) batch=$2; shift 2 ;;
    --json) json=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v mpirun >/dev/null || { echo "mpirun not found: apt-get install openmpi-bin libopenmpi-dev" >&2; exit 2; }
swift build -c release --product gpugen >/dev/null
bin=.build/release/gpugen
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
train=(train diffusion --config Benchmarks/unet/config.json --batch-size "$batch" --steps "$steps"
  --sample-every 0 --checkpoint-every 100000 --device cpu)
for r in $(seq 1 "$rounds"); do
  echo "== round $r/$rounds: P = 1 × 2 threads" >&2
  OPENBLAS_NUM_THREADS=2 GPUGEN_NUM_THREADS=2 "$bin" "${train[@]}" --out "$work/p1-$r" >/dev/null 2>&1
  echo "== round $r/$rounds: P = 2 × 1 thread" >&2
  mpirun --allow-run-as-root -np 2 --bind-to core -x OPENBLAS_NUM_THREADS=1 -x GPUGEN_NUM_THREADS=1 \
    "$bin" "${train[@]}" --out "$work/p2-$r" >/dev/null 2>&1
done
params=$(python3 -c "
import json,struct,sys
f=open('$work/p1-1/checkpoint/training_state/model.safetensors','rb'); n=struct.unpack('<Q',f.read(8))[0]
h=json.loads(f.read(n)); import math
print(sum(math.prod(v['shape']) for k,v in h.items() if k!='__metadata__'))")
grad_mb=$(python3 -c "print(round($params*4/1048576, 3))")
echo "== all-reduce bandwidth ($grad_mb MB: one step's gradients; 25 MB: the default bucket)" >&2
ar1=$(mpirun --allow-run-as-root -np 2 "$bin" bench allreduce --mb "$grad_mb" --json | tail -1)
ar2=$(mpirun --allow-run-as-root -np 2 "$bin" bench allreduce --mb 25 --json | tail -1)
python3 - "$work" "$rounds" "$batch" "$params" "$ar1" "$ar2" "$json" <<'PY'
import csv, json, os, statistics, sys
work, rounds, batch, params, ar1, ar2, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5]), json.loads(sys.argv[6]), sys.argv[7]
def rate(run):
    rows = list(csv.DictReader(open(os.path.join(work, run, "log.csv"))))
    secs = [float(r["seconds"]) for r in rows[2:]] or [float(r["seconds"]) for r in rows]
    return 1 / statistics.median(secs)
p1 = max(rate(f"p1-{r}") for r in range(1, rounds + 1))
p2 = max(rate(f"p2-{r}") for r in range(1, rounds + 1))
step_s = 1 / p2
comm_s = ar1["seconds"]
result = {
    "batch": batch, "parameters": params, "gradient_bytes_per_step": params * 4,
    "p1_2threads_steps_per_s": p1, "p2_1thread_steps_per_s": p2, "ratio_p2_over_p1": p2 / p1,
    "allreduce_gradients": ar1, "allreduce_25mb": ar2,
    "allreduce_share_of_step": comm_s / step_s,
}
print(f"reference UNet, global batch {batch}, {params} parameters ({params*4/1e6:.2f} MB of gradients per step)")
print(f"P = 1 × 2 threads: {p1:.3f} steps/s   P = 2 × 1 thread: {p2:.3f} steps/s   ratio P=2/P=1: {p2/p1:.3f}")
print(f"all-reduce of one step's gradients: {ar1['seconds']*1e3:.2f} ms ({ar1['bus_gbps']:.2f} GB/s bus), "
      f"{100*comm_s/step_s:.2f} % of a P = 2 step; 25 MB bucket: {ar2['bus_gbps']:.2f} GB/s bus")
if out:
    json.dump(result, open(out, "w"), indent=2)
PY
