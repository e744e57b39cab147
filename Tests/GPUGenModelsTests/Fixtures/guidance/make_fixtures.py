#!/usr/bin/env python3
"""Classifier-free guidance fixtures for GuidanceTests: diffusers' combination and rescale_noise_cfg.

Writes guidance.safetensors: `cond`, `uncond` (3, 2, 4, 4) float32 model outputs, and for each case
`s{scale}_r{rescale}` the guided output exactly as diffusers' pipelines compute it in float32 on the CPU:
    noise_pred = noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)
    if guidance_rescale > 0: noise_pred = rescale_noise_cfg(noise_pred, noise_pred_text, guidance_rescale)
(diffusers 0.42.1, StableDiffusionPipeline.__call__). Needs torch, diffusers, safetensors; CPU only.
Regenerate: python3 Tests/GPUGenModelsTests/Fixtures/guidance/make_fixtures.py
"""
import os

import re

import diffusers
import torch
from safetensors.torch import save_file

# diffusers' own rescale_noise_cfg, taken from its source file: importing the pipeline module needs
# transformers, which the function does not use.
_src = open(os.path.join(os.path.dirname(diffusers.__file__), "pipelines/stable_diffusion/pipeline_stable_diffusion.py")).read()
_fn = re.search(r"^def rescale_noise_cfg\(.*?(?=^\S)", _src, re.S | re.M).group(0)
_ns = {"torch": torch}
exec(_fn, _ns)
rescale_noise_cfg = _ns["rescale_noise_cfg"]

g = torch.Generator().manual_seed(13)
cond = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float32)
# The unconditional output: correlated with the conditional one, with another scale per sample.
uncond = 0.6 * cond + 0.5 * torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float32)
uncond[1] *= 2.5
out = {"cond": cond, "uncond": uncond}
for scale in [0.0, 1.5, 3.0, 7.5]:
    for rescale in [0.0, 0.7, 1.0]:
        # diffusers: noise_pred_uncond, noise_pred_text = noise_pred.chunk(2) of one batched pass.
        batched = torch.cat([uncond, cond])
        noise_pred_uncond, noise_pred_text = batched.chunk(2)
        noise_pred = noise_pred_uncond + scale * (noise_pred_text - noise_pred_uncond)
        if rescale > 0:
            noise_pred = rescale_noise_cfg(noise_pred, noise_pred_text, guidance_rescale=rescale)
        out[f"s{scale}_r{rescale}"] = noise_pred.contiguous()
save_file(out, os.path.join(os.path.dirname(os.path.abspath(__file__)), "guidance.safetensors"))
print("diffusers", diffusers.__version__, "torch", torch.__version__, "wrote", len(out) - 2, "cases")
print(_fn)
