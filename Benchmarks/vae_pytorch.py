#!/usr/bin/env python3
"""The reference ConvVAE in PyTorch, layer for layer as gpugen's (Sources/GPUGenModels/VAE/ConvVAE.swift, reference
config): encoder Conv2d(1,32,4,2,1) ReLU Conv2d(32,64,4,2,1) ReLU Flatten Linear(3136, 32); decoder Linear(16, 3136)
ReLU Unflatten(64,7,7) ConvTranspose2d(64,32,4,2,1) ReLU ConvTranspose2d(32,1,4,2,1) (Bernoulli logits).

Times one training step (forward, negative ELBO = BCE summed per image + KL, backward, Adam) at --batch and
encode + decode (posterior mean through the decoder, sigmoid) at --infer-batch, on the CPU with --threads threads.
Prints one JSON line with steps_per_s, ms_per_step and images_per_s (as `gpugen bench train --family vae --json`).
"""
import argparse, json, resource, time
import torch
import torch.nn as nn
import torch.nn.functional as F


def model():
    enc = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(3136, 32))
    dec = nn.Sequential(nn.Linear(16, 3136), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
                        nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1))
    return enc, dec


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--infer-batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    enc, dec = model()
    params = list(enc.parameters()) + list(dec.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    x = torch.rand(a.batch, 1, 28, 28)

    def step():
        h = enc(x)
        mu, lv = h[:, :16], h[:, 16:]
        z = mu + torch.exp(0.5 * lv) * torch.randn_like(mu)
        logits = dec(z)
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / a.batch
        kl = 0.5 * (mu * mu + lv.exp() - lv - 1).sum() / a.batch
        loss = rec + kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step()
        best = min(best, (time.perf_counter() - t0) / a.steps)
    xi = torch.rand(a.infer_batch, 1, 28, 28)

    def infer():
        with torch.no_grad():
            mu = enc(xi)[:, :16]
            torch.sigmoid(dec(mu))

    infer()
    best_i = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(5):
            infer()
        best_i = min(best_i, (time.perf_counter() - t0) / 5)
    print(json.dumps({"framework": "pytorch", "family": "vae", "threads": a.threads, "batch": a.batch,
                      "steps_per_s": 1 / best, "ms_per_step": 1000 * best, "infer_batch": a.infer_batch,
                      "images_per_s": a.infer_batch / best_i,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
