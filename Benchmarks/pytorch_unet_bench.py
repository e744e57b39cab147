#!/usr/bin/env python3
"""PyTorch/diffusers reference timings for gpugen's UNet benchmark.

The reference model: UNet2DModel(sample_size=32, in/out 1, block_out_channels (32, 64, 128), layers_per_block 2,
down (DownBlock2D, DownBlock2D, AttnDownBlock2D), up (AttnUpBlock2D, UpBlock2D, UpBlock2D), norm_num_groups 8,
attention_head_dim 32) with seeded random (default-init) weights, fp32, CPU, torch.inference_mode.

Prints JSON lines on stdout:
  {"impl":"pytorch","what":"unet_eval","batch":B,"ms":median,...}                 one per --batches entry
  {"impl":"pytorch","what":"dpmpp2m_sampling","batch":64,"steps":20,"ms":...,"images_per_s":...}

  python3 Benchmarks/pytorch_unet_bench.py                       # full run, 2 threads
  python3 Benchmarks/pytorch_unet_bench.py --quick               # short validation (batch 1 and 16, 3 runs, 2-step sampling at batch 4)
  python3 Benchmarks/pytorch_unet_bench.py --device cuda          # the same on the GPU (eager, fp32; timings synchronised)
  python3 Benchmarks/pytorch_unet_bench.py --save DIR --no-bench  # write config.json + diffusion_pytorch_model.safetensors (F32)
                                                                  # plus DIR/scheduler/scheduler_config.json, and exit
The weights depend only on --seed (default 0) and the torch version's default initialisers; --save writes them so
gpugen loads the identical model.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch

CONFIG = dict(
    sample_size=32, in_channels=1, out_channels=1,
    block_out_channels=(32, 64, 128), layers_per_block=2,
    down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    norm_num_groups=8, attention_head_dim=32,
)
SCHEDULER = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                 algorithm_type="dpmsolver++", solver_order=2)


def build(seed):
    from diffusers import UNet2DModel
    torch.manual_seed(seed)
    return UNet2DModel(**CONFIG).float().eval()


DEVICE = "cpu"


def sync():
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def emit(**kw):
    print(json.dumps(dict(impl="pytorch", **kw)), flush=True)


def time_eval(model, batch, warmup, runs, gen):
    x = torch.randn(batch, 1, 32, 32, generator=gen).to(DEVICE)
    t = torch.full((batch,), 500, dtype=torch.long).to(DEVICE)
    for _ in range(warmup):
        model(x, t)
    sync()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        model(x, t)
        sync()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts), min(ts)


def time_sampling(model, batch, steps, runs, gen):
    from diffusers import DPMSolverMultistepScheduler
    sched = DPMSolverMultistepScheduler(**SCHEDULER)
    ts = []
    for r in range(runs + 1):  # first run is warm-up
        x = torch.randn(batch, 1, 32, 32, generator=gen).to(DEVICE)
        sync()
        t0 = time.perf_counter()
        sched.set_timesteps(steps)
        x = x * sched.init_noise_sigma
        for t in sched.timesteps:
            eps = model(sched.scale_model_input(x, t), t).sample
            x = sched.step(eps, t, x).prev_sample
        sync()
        if r > 0:
            ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--sample-batch", type=int, default=64)
    ap.add_argument("--sample-steps", type=int, default=20)
    ap.add_argument("--sample-runs", type=int, default=2)
    ap.add_argument("--no-sampling", action="store_true")
    ap.add_argument("--quick", action="store_true", help="short validation run")
    ap.add_argument("--save", metavar="DIR", help="save_pretrained the model (and the scheduler config) to DIR")
    ap.add_argument("--no-bench", action="store_true", help="with --save: only save")
    ap.add_argument("--device", default="cpu", help="torch device: cpu (default) or cuda")
    args = ap.parse_args()
    global DEVICE
    DEVICE = args.device
    if args.quick:
        args.batches, args.warmup, args.runs = "1,16", 1, 3
        args.sample_batch, args.sample_steps, args.sample_runs = 4, 2, 1

    torch.set_num_threads(args.threads)
    model = build(args.seed).to(DEVICE)
    if args.save:
        from diffusers import DPMSolverMultistepScheduler
        model.save_pretrained(args.save, safe_serialization=True)
        DPMSolverMultistepScheduler(**SCHEDULER).save_pretrained(os.path.join(args.save, "scheduler"))
        print(f"saved to {args.save}", file=sys.stderr)
        if args.no_bench:
            return

    import diffusers
    env = dict(threads=args.threads, torch=torch.__version__, diffusers=diffusers.__version__,
               params=sum(p.numel() for p in model.parameters()), cpu=platform.processor() or platform.machine(),
               device=DEVICE)
    print(json.dumps(dict(impl="pytorch", what="env", **env)), file=sys.stderr, flush=True)
    gen = torch.Generator().manual_seed(args.seed + 1)
    with torch.inference_mode():
        for b in [int(s) for s in args.batches.split(",") if s]:
            med, best = time_eval(model, b, args.warmup, args.runs, gen)
            emit(what="unet_eval", batch=b, ms=round(med, 3), min_ms=round(best, 3), runs=args.runs,
                 threads=args.threads)
        if not args.no_sampling:
            ms = time_sampling(model, args.sample_batch, args.sample_steps, args.sample_runs, gen)
            emit(what="dpmpp2m_sampling", batch=args.sample_batch, steps=args.sample_steps, ms=round(ms, 1),
                 images_per_s=round(args.sample_batch / (ms / 1e3), 3), runs=args.sample_runs, threads=args.threads)


if __name__ == "__main__":
    main()
