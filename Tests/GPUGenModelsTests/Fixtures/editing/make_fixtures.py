#!/usr/bin/env python3
"""Reference traces of diffusers' DDIM inversion and image-to-image (SDEdit) for gpugen's editing port.

inversion_<case>/: DDIMInverseScheduler (clip_sample False, as gpugen inverts), set_timesteps(N), then

    sample = x_0                                  # a fixed "image" in [-1, 1], shape [2, 1, 4, 4]
    for t in sched.timesteps:                     # ascending
        model_output = 0.3 * sample + 0.1 * sin(t / 100 + arange(32).reshape(2, 1, 4, 4))
        sample = sched.step(model_output, t, sample).prev_sample

img2img_<case>/: the scheduler's set_timesteps(N); StableDiffusionImg2ImgPipeline.get_timesteps(N, strength)
(init = min(int(N * strength), N), t_start = N - init, timesteps[t_start * order:], set_begin_index where the
scheduler has it); the start add_noise(x_0, z, timesteps[:1]); then the same loop as Fixtures/schedulers
(scale_model_input, the fake model on the model input, step with the case's generator; noise drawn in step is
recorded).

Each steps.safetensors holds: timestep [S], sample / model_output / noise / prev_sample [S, 2, 1, 4, 4],
noise_drawn [S], model_input [S, ...] where scale_model_input is not the identity, x_0 and (img2img) z and
start [2, 1, 4, 4]; metadata "case" (JSON). Run: python3 make_fixtures.py [case ...] (writes next to this file;
names: only those cases; img2img_dpmpp2m_sde_s07, then img2img_dpmpp3m_sde_s07 and the img2img_unipc cases were
added that way, torch 2.15.0+cu132 on CPU).
"""
import json
import os
import shutil
import sys

import diffusers
import torch
from diffusers import (DDIMInverseScheduler, DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler,
                       EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, HeunDiscreteScheduler,
                       UniPCMultistepScheduler)
from diffusers.schedulers import (scheduling_ddim, scheduling_ddpm, scheduling_dpmsolver_multistep,
                                  scheduling_euler_ancestral_discrete, scheduling_euler_discrete,
                                  scheduling_heun_discrete, scheduling_unipc_multistep)
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPE = (2, 1, 4, 4)
LINEAR = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
# The bundled gpugen model's scheduler (a DDPMScheduler config: trailing spacing, clip_sample True).
BUNDLED = dict(LINEAR, timestep_spacing="trailing")

INVERSION = {
    "inversion_eps_leading": (dict(LINEAR, clip_sample=False), 10, "epsilon, leading spacing"),
    "inversion_eps_trailing": (dict(BUNDLED, clip_sample=False), 20, "epsilon, trailing (the bundled model's)"),
    "inversion_vpred": (dict(LINEAR, clip_sample=False, prediction_type="v_prediction", timestep_spacing="trailing"),
                        10, "v_prediction, trailing"),
    "inversion_sample_alpha0": (dict(LINEAR, clip_sample=False, prediction_type="sample", set_alpha_to_one=False),
                                10, "sample prediction, set_alpha_to_one False (initial alpha = alphas_cumprod[0])"),
    "inversion_scaled_linear": (dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                     beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                                     steps_offset=1), 10, "Stable Diffusion betas, steps_offset 1"),
}

# name -> (class, config, N, strength, step kwargs)
IMG2IMG = {
    "img2img_ddim_s06": (DDIMScheduler, BUNDLED, 10, 0.6, dict(eta=0.0)),
    "img2img_ddim_eta_s05": (DDIMScheduler, LINEAR, 10, 0.5, dict(eta=0.7)),
    "img2img_ddpm_s03": (DDPMScheduler, BUNDLED, 20, 0.3, {}),
    "img2img_dpmpp2m_s07": (DPMSolverMultistepScheduler, dict(LINEAR, algorithm_type="dpmsolver++", solver_order=2),
                            10, 0.7, {}),
    "img2img_euler_s05": (EulerDiscreteScheduler, LINEAR, 10, 0.5, {}),
    "img2img_euler_a_s08": (EulerAncestralDiscreteScheduler, LINEAR, 10, 0.8, {}),
    "img2img_heun_s04": (HeunDiscreteScheduler, LINEAR, 10, 0.4, {}),
    # SDE: the step noise is drawn from the case's generator and injected as `variance_noise`.
    "img2img_dpmpp2m_sde_s07": (DPMSolverMultistepScheduler, dict(LINEAR, algorithm_type="sde-dpmsolver++",
                                                                  solver_order=2), 10, 0.7, {}),
    "img2img_dpmpp3m_sde_s07": (DPMSolverMultistepScheduler, dict(LINEAR, algorithm_type="sde-dpmsolver++",
                                                                  solver_order=3), 10, 0.7, {}),
    # UniPC: the corrector restarts with the history at the cut (no corrector at its first step).
    "img2img_unipc_s06": (UniPCMultistepScheduler, LINEAR, 10, 0.6, {}),
    "img2img_unipc_bh1_o3_s08": (UniPCMultistepScheduler, dict(LINEAR, solver_type="bh1", solver_order=3,
                                                               final_sigmas_type="sigma_min"), 10, 0.8, {}),
}

MODULES = [scheduling_ddim, scheduling_ddpm, scheduling_dpmsolver_multistep, scheduling_euler_ancestral_discrete,
           scheduling_euler_discrete, scheduling_heun_discrete, scheduling_unipc_multistep]
_drawn = []


def _install_recorder():
    for mod in MODULES:
        if not hasattr(mod, "randn_tensor"):
            continue
        orig = mod.randn_tensor

        def wrapper(*a, _orig=orig, **kw):
            out = _orig(*a, **kw)
            _drawn.append(out.detach().clone())
            return out
        mod.randn_tensor = wrapper


def fake_model(model_input, t):
    phase = torch.arange(32, dtype=torch.float32).reshape(SHAPE)
    return 0.3 * model_input + 0.1 * torch.sin(float(t) / 100.0 + phase)


def image(seed):
    return torch.rand(SHAPE, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def loop(sched, timesteps, sample, gen, step_kwargs):
    accepts_gen = "generator" in type(sched).step.__code__.co_varnames
    rec = {k: [] for k in ["timestep", "sample", "model_input", "model_output", "noise", "noise_drawn",
                           "prev_sample"]}
    for t in timesteps:
        model_input = sched.scale_model_input(sample, t)
        model_output = fake_model(model_input, t)
        _drawn.clear()
        kw = dict(step_kwargs)
        if accepts_gen:
            kw["generator"] = gen
        if str(sched.config.get("algorithm_type", "")).startswith("sde-"):
            z = torch.randn(SHAPE, generator=gen)  # injected noise: step() uses it as given
            kw["variance_noise"] = z
            _drawn.append(z.clone())
        out = sched.step(model_output, t, sample, **kw)
        assert len(_drawn) <= 1
        rec["timestep"].append(torch.tensor(float(t)))
        rec["sample"].append(sample.clone())
        rec["model_input"].append(model_input.clone())
        rec["model_output"].append(model_output.clone())
        rec["noise"].append(_drawn[0].reshape(SHAPE) if _drawn else torch.zeros(SHAPE))
        rec["noise_drawn"].append(torch.tensor(1.0 if _drawn else 0.0))
        rec["prev_sample"].append(out.prev_sample.clone())
        sample = out.prev_sample
    tensors = {k: torch.stack(v).float().contiguous() for k, v in rec.items()}
    if torch.equal(tensors["model_input"], tensors["sample"]):
        del tensors["model_input"]
    return tensors


def write(name, sched, tensors, meta):
    out_dir = os.path.join(HERE, name)
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    sched.save_config(out_dir)
    meta = dict(meta, name=name, scheduler=type(sched).__name__, torch=torch.__version__,
                diffusers=diffusers.__version__,
                fake_model="model_output = 0.3 * model_input + 0.1 * sin(t / 100 + arange(32).reshape(2,1,4,4))")
    save_file(tensors, os.path.join(out_dir, "steps.safetensors"), metadata={"case": json.dumps(meta)})


def main():
    torch.set_num_threads(1)
    _install_recorder()
    only = set(sys.argv[1:])  # case names: regenerate just those (seeds stay tied to each case's position)
    summary = {}
    for i, (name, (cfg, n, desc)) in enumerate(INVERSION.items()):
        if only and name not in only:
            continue
        sched = DDIMInverseScheduler(**cfg)
        sched.set_timesteps(n)
        x0 = image(300 + i)
        t = loop(sched, sched.timesteps.clone(), x0, None, {})
        t["x_0"] = x0
        write(name, sched, t, dict(description=desc, num_inference_steps=n, num_model_calls=n))
        summary[name] = dict(calls=n, final_std=round(float(t["prev_sample"][-1].std()), 4))
    for i, (name, (cls, cfg, n, strength, kw)) in enumerate(IMG2IMG.items()):
        if only and name not in only:
            continue
        sched = cls(**cfg)
        sched.set_timesteps(n)
        init = min(int(n * strength), n)
        t_start = max(n - init, 0)
        timesteps = sched.timesteps[t_start * sched.order:]
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(t_start * sched.order)
        x0 = image(400 + i)
        z = torch.randn(SHAPE, generator=torch.Generator().manual_seed(500 + i))
        start = sched.add_noise(x0, z, timesteps[:1])
        t = loop(sched, timesteps, start, torch.Generator().manual_seed(600 + i), kw)
        t.update(x_0=x0, z=z, start=start)
        write(name, sched, t, dict(description=f"{cls.__name__} img2img, N {n}, strength {strength}",
                                   num_inference_steps=n, strength=strength, step_kwargs=kw,
                                   num_model_calls=len(timesteps)))
        summary[name] = dict(calls=len(timesteps), noise_steps=int(t["noise_drawn"].sum()))
    print(json.dumps(dict(torch=torch.__version__, diffusers=diffusers.__version__, cases=summary), indent=1))


if __name__ == "__main__":
    main()
