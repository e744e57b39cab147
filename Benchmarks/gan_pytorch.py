#!/usr/bin/env python3
"""The reference DCGAN (28x28x1) in PyTorch: the target gpugen's GAN family is measured against (issue #11).

Generator G (z of 64 -> image in [-1, 1]):
    net.0  Linear(64, 128*7*7)
    net.1  Unflatten(1, (128, 7, 7))
    net.2  BatchNorm2d(128)   <- the BatchNorm after the Linear normalises the 128 CHANNELS of the unflattened
                                 7x7 map (statistics over batch x 7 x 7), not the 6272 features of the Linear
                                 output (that would be BatchNorm1d(6272)).
    net.3  ReLU
    net.4  ConvTranspose2d(128, 64, 4, 2, 1)        7x7 -> 14x14
    net.5  BatchNorm2d(64)
    net.6  ReLU
    net.7  ConvTranspose2d(64, 1, 4, 2, 1)          14x14 -> 28x28
    net.8  Tanh
  state_dict (in order), 540,225 parameters:
    net.0.weight [6272, 64]  net.0.bias [6272]
    net.2.weight [128]  net.2.bias [128]  net.2.running_mean [128]  net.2.running_var [128]  net.2.num_batches_tracked []
    net.4.weight [128, 64, 4, 4]  net.4.bias [64]
    net.5.weight [64]  net.5.bias [64]  net.5.running_mean [64]  net.5.running_var [64]  net.5.num_batches_tracked []
    net.7.weight [64, 1, 4, 4]  net.7.bias [1]

Discriminator D (image -> one logit):
    net.0  Conv2d(1, 64, 4, 2, 1)                   28x28 -> 14x14
    net.1  LeakyReLU(0.2)
    net.2  Conv2d(64, 128, 4, 2, 1)                 14x14 -> 7x7
    net.3  BatchNorm2d(128)
    net.4  LeakyReLU(0.2)
    net.5  Flatten
    net.6  Linear(6272, 1)
  state_dict (in order), 138,817 parameters:
    net.0.weight [64, 1, 4, 4]  net.0.bias [64]
    net.2.weight [128, 64, 4, 4]  net.2.bias [128]
    net.3.weight [128]  net.3.bias [128]  net.3.running_mean [128]  net.3.running_var [128]  net.3.num_batches_tracked []
    net.6.weight [1, 6272]  net.6.bias [1]

PyTorch default initialisation (no DCGAN N(0, 0.02) re-init), float32, BatchNorm eps 1e-5, momentum 0.1.

One training step (both nets in train mode; BatchNorm uses batch statistics):
    z = randn(batch, 64) (fresh every step); fake = G(z)            -- one G forward per step
    D step:  loss_D = mean(softplus(-D(x_real))) + mean(softplus(D(fake.detach())))
             (real and fake go through D in two separate calls, so D's BatchNorm sees each batch on its own,
             as in the PyTorch DCGAN example); backward; Adam step on D.
    G step:  loss_G = mean(softplus(-D(fake)))  (non-saturating, logit space; the same fake, through the
             just-updated D); backward into G only (D's parameters are frozen with requires_grad_(False) for
             this backward, so no D weight gradients are computed); Adam step on G.
    Two Adam optimisers, lr 2e-4, betas (0.5, 0.999). x_real: a fixed tensor, uniform in [-1, 1].
Sampling: G in eval mode (BatchNorm running statistics), torch.no_grad(), z = randn(sample_batch, 64) drawn inside
the timed call, images/s.

Prints one JSON line (as `gpugen bench train --family gan --json`): framework, family, threads, batch, ms_per_step,
steps_per_s, sample_batch, sample_images_per_s, parameters_g, parameters_d (and peak_rss_mb).
"""
import argparse, json, resource, time
import torch
import torch.nn as nn
import torch.nn.functional as F

Z_DIM = 64


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(Z_DIM, 128 * 7 * 7),
            nn.Unflatten(1, (128, 7, 7)),
            nn.BatchNorm2d(128),  # over the 128 channels of the 7x7 map
            nn.ReLU(),
            nn.ConvTranspose2d(128, 64, 4, 2, 1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.ConvTranspose2d(64, 1, 4, 2, 1),
            nn.Tanh(),
        )

    def forward(self, z):
        return self.net(z)


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 64, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(64, 128, 4, 2, 1),
            nn.BatchNorm2d(128),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(128 * 7 * 7, 1),
        )

    def forward(self, x):
        return self.net(x)


def count(m):
    return sum(p.numel() for p in m.parameters())


def main():
    ap = argparse.ArgumentParser(
        description="Training-step and sampling speed of the reference DCGAN (28x28x1, z 64) in PyTorch on the CPU; "
                    "the PyTorch half of Benchmarks/gan_side_by_side.sh. One step = one D step + one G step "
                    "(non-saturating loss, Adam 2e-4, betas (0.5, 0.999)). Prints one JSON line.")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per repeat (default 20)")
    ap.add_argument("--batch", type=int, default=64, help="training batch (default 64)")
    ap.add_argument("--sample-batch", type=int, default=256, help="sampling batch (default 256)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats; the best is reported (default 3)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed warm-up training steps (default 3)")
    a = ap.parse_args()
    if min(a.threads, a.steps, a.batch, a.sample_batch, a.repeats) < 1 or a.warmup < 0:
        ap.error("--threads, --steps, --batch, --sample-batch and --repeats must be positive")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    G, D = Generator(), Discriminator()
    G.train(); D.train()
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    d_params = list(D.parameters())
    x = torch.rand(a.batch, 1, 28, 28) * 2 - 1  # fixed "real" batch in [-1, 1]

    def step():
        z = torch.randn(a.batch, Z_DIM)
        fake = G(z)
        # D step
        loss_d = F.softplus(-D(x)).mean() + F.softplus(D(fake.detach())).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # G step (D frozen: gradients flow through D into G only)
        for p in d_params:
            p.requires_grad_(False)
        loss_g = F.softplus(-D(fake)).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for p in d_params:
            p.requires_grad_(True)

    for _ in range(a.warmup):
        step()
    best = float("inf")
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step()
        best = min(best, (time.perf_counter() - t0) / a.steps)

    G.eval()

    def sample():
        with torch.no_grad():
            G(torch.randn(a.sample_batch, Z_DIM))

    sample()
    best_s = float("inf")
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        for _ in range(5):
            sample()
        best_s = min(best_s, (time.perf_counter() - t0) / 5)
    print(json.dumps({"framework": "pytorch", "family": "gan", "threads": a.threads, "batch": a.batch,
                      "ms_per_step": 1000 * best, "steps_per_s": 1 / best, "sample_batch": a.sample_batch,
                      "sample_images_per_s": a.sample_batch / best_s,
                      "parameters_g": count(G), "parameters_d": count(D),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
