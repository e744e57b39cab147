#!/usr/bin/env python3
"""Dumps diffusers' noise schedules to schedules.json for NoiseScheduleTests.

For each case: the scheduler config exactly as diffusers serialises it (`scheduler.to_json_string()`,
including non-standard tokens such as -Infinity), betas and alphas_cumprod at a subset of training
timesteps, and for several step counts the timesteps, sigmas and init_noise_sigma that `set_timesteps`
leaves on the scheduler; for DDPM also the posterior variance (`_get_variance`, fixed_small) and the
standard deviation of the noise `step` adds for the config's variance_type.

Usage: python3 make_fixtures.py   (needs torch and diffusers; CPU is enough)
"""
import json
import os

import diffusers
import numpy as np
import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
)

HERE = os.path.dirname(os.path.abspath(__file__))
STEPS = [1, 7, 10, 25]
SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")

CASES = [
    ("ddpm-linear-leading", DDPMScheduler, {}),
    ("ddpm-linear-trailing", DDPMScheduler, dict(timestep_spacing="trailing")),
    ("ddpm-linear-linspace", DDPMScheduler, dict(timestep_spacing="linspace")),
    ("ddpm-scaled-linear-offset", DDPMScheduler, dict(SD, steps_offset=1)),
    ("ddpm-cosine", DDPMScheduler, dict(beta_schedule="squaredcos_cap_v2")),
    ("ddpm-sigmoid", DDPMScheduler, dict(beta_schedule="sigmoid")),
    ("ddpm-laplace", DDPMScheduler, dict(beta_schedule="laplace")),
    ("ddpm-zero-snr", DDPMScheduler, dict(rescale_betas_zero_snr=True, timestep_spacing="trailing")),
    ("ddpm-fixed-large", DDPMScheduler, dict(variance_type="fixed_large", num_train_timesteps=500)),
    ("ddpm-fixed-small-log", DDPMScheduler, dict(variance_type="fixed_small_log", beta_schedule="squaredcos_cap_v2")),
    ("ddim-sd", DDIMScheduler, dict(SD, steps_offset=1, set_alpha_to_one=False, clip_sample=False)),
    ("ddim-zero-snr-trailing", DDIMScheduler, dict(SD, rescale_betas_zero_snr=True, timestep_spacing="trailing")),
    ("dpm-default", DPMSolverMultistepScheduler, {}),
    ("dpm-sd-karras", DPMSolverMultistepScheduler, dict(SD, use_karras_sigmas=True)),
    ("dpm-cosine-clipped", DPMSolverMultistepScheduler, dict(beta_schedule="squaredcos_cap_v2", lambda_min_clipped=-5.1)),
    (
        "dpm-cosine-karras",
        DPMSolverMultistepScheduler,
        dict(beta_schedule="squaredcos_cap_v2", lambda_min_clipped=-5.1, use_karras_sigmas=True),
    ),
    ("dpm-leading-sigma-min", DPMSolverMultistepScheduler, dict(SD, timestep_spacing="leading", steps_offset=1, final_sigmas_type="sigma_min")),
    ("dpm-trailing-zero-snr", DPMSolverMultistepScheduler, dict(timestep_spacing="trailing", rescale_betas_zero_snr=True)),
    ("euler-linspace", EulerDiscreteScheduler, dict(SD)),
    ("euler-leading-offset", EulerDiscreteScheduler, dict(SD, timestep_spacing="leading", steps_offset=1)),
    ("euler-trailing", EulerDiscreteScheduler, dict(timestep_spacing="trailing")),
    ("euler-karras", EulerDiscreteScheduler, dict(SD, use_karras_sigmas=True)),
    ("euler-karras-range", EulerDiscreteScheduler, dict(use_karras_sigmas=True, sigma_min=0.05, sigma_max=20.0)),
    ("euler-log-linear", EulerDiscreteScheduler, dict(interpolation_type="log_linear")),
    ("euler-zero-snr-sigma-min", EulerDiscreteScheduler, dict(SD, rescale_betas_zero_snr=True, timestep_spacing="trailing", final_sigmas_type="sigma_min")),
    ("euler-continuous-v", EulerDiscreteScheduler, dict(timestep_type="continuous", prediction_type="v_prediction", use_karras_sigmas=True)),
    ("euler-ancestral-leading", EulerAncestralDiscreteScheduler, dict(SD, timestep_spacing="leading", steps_offset=1)),
    ("heun-default", HeunDiscreteScheduler, {}),
    ("heun-karras-cosine", HeunDiscreteScheduler, dict(beta_schedule="squaredcos_cap_v2", use_karras_sigmas=True)),
    ("heun-exp-trailing", HeunDiscreteScheduler, dict(beta_schedule="exp", timestep_spacing="trailing")),
]


def floats(t):
    return [float(v) for v in np.asarray(t, dtype=np.float64).reshape(-1)]


def sample_indices(n):
    return sorted(set(list(range(10)) + list(range(10, n - 10, 37)) + list(range(n - 10, n))))


def main():
    out = {
        "diffusers_version": diffusers.__version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "cases": [],
    }
    for name, cls, kwargs in CASES:
        s = cls(**kwargs)
        config_text = s.to_json_string()
        idx = sample_indices(s.config.num_train_timesteps)
        case = {
            "name": name,
            "config_json": config_text,
            "indices": idx,
            "betas": floats(s.betas[idx]),
            "alphas_cumprod": floats(s.alphas_cumprod[idx]),
            "inference": [],
        }
        for n in STEPS:
            s.set_timesteps(n)
            step = {"steps": n, "timesteps": floats(s.timesteps)}
            if hasattr(s, "sigmas") and cls not in (DDPMScheduler, DDIMScheduler):
                step["sigmas"] = floats(s.sigmas)
                step["init_noise_sigma"] = float(s.init_noise_sigma)
            if cls is DDPMScheduler:
                ts = [int(t) for t in s.timesteps]
                # [t, previous t, fixed_small posterior variance, std of the noise DDPMScheduler.step adds]
                rows = []
                for t in ts:
                    small = s._get_variance(t, variance_type="fixed_small")
                    v = s._get_variance(t)
                    std = v if s.config.variance_type == "fixed_small_log" else v**0.5
                    rows.append([t, int(s.previous_timestep(t)), float(small), float(std)])
                step["variance"] = rows
            case["inference"].append(step)
        out["cases"].append(case)
    with open(os.path.join(HERE, "schedules.json"), "w") as f:
        # One line per case keeps the file small and its diffs readable.
        f.write("{\n")
        for key in ("diffusers_version", "torch_version", "numpy_version"):
            f.write(f"{json.dumps(key)}: {json.dumps(out[key])},\n")
        f.write('"cases": [\n')
        f.write(",\n".join(json.dumps(c, separators=(",", ":")) for c in out["cases"]))
        f.write("\n]}\n")


if __name__ == "__main__":
    main()
