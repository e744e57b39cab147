#!/usr/bin/env python3
"""PyTorch/diffusers CPU training-step speed, the reference for `gpugen bench train`.

The reference model (Benchmarks/unet/config.json: 32×32, 1 channel, block_out_channels (32, 64, 128)), fp32, CPU,
seeded default-init weights. One training step = forward + MSE loss (epsilon target on x_t from DDPMScheduler.add_noise,
random timesteps) + backward + global-norm clipping (clip_grad_norm_, 1.0) + AdamW step (lr 1e-4), as in
docs/TRAINING.md. Batches are random tensors drawn before timing (the data pipeline is not measured).
Warm-up steps are not timed; then --steps steps are timed one by one and the best and the median are reported.

Prints one JSON line on stdout:
  {"framework":"pytorch","threads":2,"batch":64,"steps_per_s":…,"s_per_step":…,"peak_rss_mb":…,…}
s_per_step is the median over the timed steps (steps_per_s its inverse); best_s_per_step the fastest one.
peak_rss_mb is the process's peak resident set (resource.getrusage ru_maxrss).

  python3 Benchmarks/pytorch_train_bench.py                          # batch 64, 2 threads, 2 + 10 steps
  python3 Benchmarks/pytorch_train_bench.py --steps 3 --batch 64 --threads 2
  python3 Benchmarks/pytorch_train_bench.py --class-conditional      # num_class_embeds 10
"""
import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", "--batch-size", dest="batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--clip-grad", type=float, default=1.0, help="0: no clipping")
    ap.add_argument("--class-conditional", action="store_true", help="num_class_embeds 10 (labels fed every step)")
    ap.add_argument("--config", default=os.path.join(REPO, "Benchmarks", "unet", "config.json"))
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    from diffusers import DDPMScheduler, UNet2DModel
    cfg = {k: v for k, v in json.load(open(args.config)).items() if not k.startswith("_")}
    if args.class_conditional:
        cfg["num_class_embeds"] = 10
    torch.manual_seed(args.seed)
    model = UNet2DModel(**cfg).float().train()
    sched = DDPMScheduler()
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    B, C, S = args.batch, cfg["in_channels"], cfg["sample_size"]
    T = sched.config.num_train_timesteps
    gen = torch.Generator().manual_seed(args.seed + 1)
    n = args.warmup + args.steps
    data = [(torch.rand(B, C, S, S, generator=gen) * 2 - 1, torch.randn(B, C, S, S, generator=gen),
             torch.randint(0, T, (B,), generator=gen), torch.randint(0, 10, (B,), generator=gen)) for _ in range(n)]

    def step(x0, eps, t, labels):
        xt = sched.add_noise(x0, eps, t)
        out = model(xt, t, class_labels=labels if args.class_conditional else None).sample
        loss = F.mse_loss(out, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(params, args.clip_grad)
        opt.step()
        return loss.item()

    times = []
    for i, batch in enumerate(data):
        t0 = time.perf_counter()
        step(*batch)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    import diffusers
    print(json.dumps(dict(
        framework="pytorch", threads=args.threads, batch=B, steps_per_s=round(1 / med, 4), s_per_step=round(med, 4),
        best_s_per_step=round(min(times), 4), images_per_s=round(B / med, 2),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        steps=args.steps, warmup=args.warmup, class_conditional=args.class_conditional,
        params=sum(p.numel() for p in params), torch=torch.__version__, diffusers=diffusers.__version__,
        cpu=platform.processor() or platform.machine())), flush=True)


if __name__ == "__main__":
    sys.exit(main())
