#!/usr/bin/env python3
"""End-to-end parity: sample the same model from the same initial noise with diffusers and with gpugen.

    python3 Tools/compare_with_diffusers.py MODEL_DIR [--sampler ddim|dpmpp-2m] [--steps 20] [--n 10]

MODEL_DIR is a diffusers pipeline folder (model_index.json, unet/, scheduler/), e.g. the bundled
Sources/GPUGenModels/Resources/DefaultModel. Needs torch, diffusers and numpy, and a built gpugen
(swift build -c release). Prints the largest absolute difference between the two final samples.
"""
import argparse, json, os, subprocess, sys, tempfile

import numpy as np
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UNet2DModel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--sampler", default="ddim", choices=["ddim", "dpmpp-2m"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--gpugen", default=".build/release/gpugen")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    torch.set_num_threads(2)
    unet = UNet2DModel.from_pretrained(os.path.join(a.model, "unet")).float().eval()
    cfg = json.load(open(os.path.join(a.model, "scheduler", "scheduler_config.json")))
    if a.sampler == "ddim":
        sched = DDIMScheduler.from_config(cfg)
    else:
        sched = DPMSolverMultistepScheduler.from_config(cfg, algorithm_type="dpmsolver++", solver_order=2)
    sched.set_timesteps(a.steps)
    c, s = unet.config.in_channels, unet.config.sample_size
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((a.n, c, s, s)).astype(np.float32)
    classes = unet.config.num_class_embeds
    labels = torch.tensor([i % classes for i in range(a.n)]) if classes else None
    x = torch.from_numpy(noise) * sched.init_noise_sigma
    with torch.no_grad():
        for t in sched.timesteps:
            m = unet(sched.scale_model_input(x, t), t, class_labels=labels).sample
            x = sched.step(m, t, x).prev_sample
    with tempfile.TemporaryDirectory() as d:
        np.save(os.path.join(d, "noise.npy"), noise)
        cmd = [a.gpugen, "sample", "--model", a.model, "--sampler", a.sampler, "--steps", str(a.steps), "--n", str(a.n),
               "--noise", os.path.join(d, "noise.npy"), "--npy", os.path.join(d, "g.npy"),
               "--out", os.path.join(d, "g.png"), "--device", a.device]
        if classes:
            cmd += ["--class", ",".join(str(i) for i in range(classes))]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        g = np.load(os.path.join(d, "g.npy"))
    diff = float(np.abs(g - x.numpy()).max())
    print(f"{a.sampler} {a.steps} steps, {a.n} images on {a.device}: max abs diff {diff:.3g} "
          f"(sample max abs {float(np.abs(x.numpy()).max()):.3g})")
    return 0 if diff < 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main())
