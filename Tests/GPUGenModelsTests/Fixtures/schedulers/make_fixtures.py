#!/usr/bin/env python3
"""Reference step-by-step traces of diffusers schedulers for gpugen's sampler port.

For each case: configure the scheduler, set_timesteps(N), and run the full sampling loop on a fixed
[2, 1, 4, 4] sample with a deterministic fake model:

    model_input  = scheduler.scale_model_input(sample, t)
    model_output = 0.3 * model_input + 0.1 * sin(t / 100 + arange(32).reshape(2, 1, 4, 4))
    out          = scheduler.step(model_output, t, sample, **step_kwargs)   # generator passed where accepted

Noise drawn inside step() is recorded by wrapping `randn_tensor` in each scheduler module (the wrapper
calls the original with the case's seeded generator and keeps a copy), so a port can replay it.

Output per case, in <case>/:
  scheduler_config.json   diffusers' own save_config output (may contain non-standard JSON, kept as written)
  steps.safetensors       the trace (see README.md); JSON metadata under the key "case"

Run: python3 make_fixtures.py [case ...]   (from anywhere; writes next to this file; names: only those cases)
"""
import json
import os
import shutil
import sys

import torch
import diffusers
from diffusers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, HeunDiscreteScheduler, UniPCMultistepScheduler)
from diffusers.schedulers import (scheduling_ddim, scheduling_ddpm, scheduling_dpmsolver_multistep,
                                  scheduling_euler_ancestral_discrete, scheduling_euler_discrete,
                                  scheduling_heun_discrete, scheduling_unipc_multistep)
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPE = (2, 1, 4, 4)
LINEAR = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")

# name -> (class, config kwargs, num_inference_steps, step kwargs, description)
CASES = {
    "ddpm_clip_n1000": (DDPMScheduler, dict(LINEAR, variance_type="fixed_small", clip_sample=True), 1000, {},
                        "DDPM, fixed_small, clip_sample (range 1), all 1000 steps"),
    "ddpm_noclip_n1000": (DDPMScheduler, dict(LINEAR, variance_type="fixed_small", clip_sample=False), 1000, {},
                          "DDPM, fixed_small, no clipping, all 1000 steps"),
    "ddpm_clip_n10": (DDPMScheduler, dict(LINEAR, variance_type="fixed_small", clip_sample=True), 10, {},
                      "DDPM with 10 inference steps (leading spacing, prev_t = t - 100)"),
    "ddim_eta0_eps": (DDIMScheduler, dict(LINEAR), 10, dict(eta=0.0),
                      "DDIM eta 0, epsilon, defaults (clip_sample True, set_alpha_to_one True, leading spacing)"),
    "ddim_eta07_eps": (DDIMScheduler, dict(LINEAR), 10, dict(eta=0.7), "DDIM eta 0.7, epsilon (draws noise)"),
    "ddim_eta0_vpred": (DDIMScheduler, dict(LINEAR, prediction_type="v_prediction"), 10, dict(eta=0.0),
                        "DDIM eta 0, v_prediction"),
    "ddim_eta07_vpred": (DDIMScheduler, dict(LINEAR, prediction_type="v_prediction"), 10, dict(eta=0.7),
                         "DDIM eta 0.7, v_prediction"),
    "ddim_eta0_sample": (DDIMScheduler, dict(LINEAR, prediction_type="sample"), 10, dict(eta=0.0),
                         "DDIM eta 0, sample (x0) prediction"),
    "ddim_eta07_sample": (DDIMScheduler, dict(LINEAR, prediction_type="sample"), 10, dict(eta=0.7),
                          "DDIM eta 0.7, sample (x0) prediction"),
    "ddim_eta0_eps_trailing": (DDIMScheduler, dict(LINEAR, timestep_spacing="trailing"), 10, dict(eta=0.0),
                               "DDIM eta 0, timestep_spacing trailing (first t = 999)"),
    "ddim_eta0_scaled_linear": (DDIMScheduler, dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                                    beta_schedule="scaled_linear", clip_sample=False,
                                                    set_alpha_to_one=False, steps_offset=1), 10, dict(eta=0.0),
                                "DDIM with Stable-Diffusion betas: scaled_linear 0.00085..0.012, no clip, "
                                "set_alpha_to_one False, steps_offset 1"),
    "ddim_eta0_cos": (DDIMScheduler, dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2"), 10,
                      dict(eta=0.0), "DDIM eta 0 over squaredcos_cap_v2 betas (clip_sample True)"),
    "dpmpp2m": (DPMSolverMultistepScheduler, dict(LINEAR, algorithm_type="dpmsolver++", solver_order=2,
                                                  lower_order_final=True), 10, {},
                "DPM-Solver++ 2M (linspace spacing, final sigma 0)"),
    "dpmpp2m_karras": (DPMSolverMultistepScheduler, dict(LINEAR, algorithm_type="dpmsolver++", solver_order=2,
                                                         lower_order_final=True, use_karras_sigmas=True), 10, {},
                       "DPM-Solver++ 2M with Karras sigmas (rho 7; timesteps from sigma->t interpolation, rounded)"),
    "dpmpp2m_cos": (DPMSolverMultistepScheduler, dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                                                      algorithm_type="dpmsolver++", solver_order=2,
                                                      lower_order_final=True), 10, {},
                    "DPM-Solver++ 2M over squaredcos_cap_v2 betas (cosine schedule, max beta 0.999)"),
    "euler": (EulerDiscreteScheduler, dict(LINEAR), 10, {},
              "Euler (linspace spacing, linear interpolation, s_churn 0: deterministic, no noise drawn)"),
    "euler_ancestral": (EulerAncestralDiscreteScheduler, dict(LINEAR), 10, {}, "Euler ancestral (draws noise)"),
    "heun": (HeunDiscreteScheduler, dict(LINEAR), 10, {},
             "Heun 2nd order: 19 model calls for 10 steps (timesteps repeated)"),
    # SDE cases: the noise is drawn here from the case's generator and passed as `variance_noise`.
    "dpmpp2m_sde": (DPMSolverMultistepScheduler, dict(LINEAR, algorithm_type="sde-dpmsolver++", solver_order=2,
                                                      lower_order_final=True), 10, {},
                    "DPM++ 2M SDE (sde-dpmsolver++, midpoint; noise injected as variance_noise)"),
    "dpmpp2m_sde_karras": (DPMSolverMultistepScheduler, dict(LINEAR, algorithm_type="sde-dpmsolver++",
                                                             solver_order=2, lower_order_final=True,
                                                             use_karras_sigmas=True), 10, {},
                           "DPM++ 2M SDE with Karras sigmas (noise injected as variance_noise)"),
    "dpmpp2m_sde_heun_vpred": (DPMSolverMultistepScheduler, dict(LINEAR, algorithm_type="sde-dpmsolver++",
                                                                 solver_order=2, solver_type="heun",
                                                                 prediction_type="v_prediction",
                                                                 lower_order_final=True), 10, {},
                               "DPM++ 2M SDE, solver_type heun, v_prediction (noise injected as variance_noise)"),
    # DPM++ 3M SDE (solver_order 3), noise injected as above.
    "dpmpp3m_sde": (DPMSolverMultistepScheduler, dict(LINEAR, algorithm_type="sde-dpmsolver++", solver_order=3,
                                                      lower_order_final=True), 10, {},
                    "DPM++ 3M SDE (orders 1, 2, 3 … 3, 2, 1 with lower_order_final; noise injected)"),
    "dpmpp3m_sde_karras_n20": (DPMSolverMultistepScheduler, dict(LINEAR, algorithm_type="sde-dpmsolver++",
                                                                 solver_order=3, use_karras_sigmas=True), 20, {},
                               "DPM++ 3M SDE, Karras sigmas, 20 steps (third order to the first-order last step)"),
    "dpmpp3m_sde_heun_vpred": (DPMSolverMultistepScheduler, dict(LINEAR, algorithm_type="sde-dpmsolver++",
                                                                 solver_order=3, solver_type="heun",
                                                                 prediction_type="v_prediction",
                                                                 lower_order_final=False), 10, {},
                               "DPM++ 3M SDE, solver_type heun, v_prediction, lower_order_final False"),
    # UniPC: predictor + corrector (the corrector of step i is folded into step i's update by gpugen).
    "unipc_bh2_o2": (UniPCMultistepScheduler, dict(LINEAR), 10, {}, "UniPC defaults: bh2, order 2, predict_x0"),
    "unipc_bh1_o3": (UniPCMultistepScheduler, dict(LINEAR, solver_type="bh1", solver_order=3,
                                                   final_sigmas_type="sigma_min"), 10, {},
                     "UniPC bh1, order 3 (lower_order_final: orders 1 2 3 … 3 2 1), sigma_min (bh1 with a zero "
                     "final sigma is NaN in diffusers)"),
    "unipc_bh2_o3_karras_n20": (UniPCMultistepScheduler, dict(LINEAR, solver_order=3, use_karras_sigmas=True), 20,
                                {}, "UniPC bh2, order 3, Karras sigmas, 20 steps"),
    "unipc_bh1_o1_vpred": (UniPCMultistepScheduler, dict(LINEAR, solver_type="bh1", solver_order=1,
                                                         prediction_type="v_prediction",
                                                         final_sigmas_type="sigma_min"), 10, {},
                           "UniPC bh1, order 1 (UniC-1 corrector), v_prediction, sigma_min"),
    "unipc_bh2_o3_noisepred": (UniPCMultistepScheduler, dict(LINEAR, solver_order=3, predict_x0=False,
                                                             lower_order_final=False,
                                                             final_sigmas_type="sigma_min"), 10, {},
                               "UniPC bh2, order 3, predict_x0 False (noise prediction), lower_order_final False, "
                               "sigma_min (with a zero final sigma diffusers' noise prediction gives NaN)"),
    "unipc_bh1_o2_noisepred_sample": (UniPCMultistepScheduler, dict(LINEAR, solver_type="bh1", predict_x0=False,
                                                                    prediction_type="sample",
                                                                    final_sigmas_type="sigma_min"), 10, {},
                                      "UniPC bh1, order 2, predict_x0 False, sample prediction, sigma_min"),
    "unipc_bh2_o2_nocorr_trailing": (UniPCMultistepScheduler, dict(LINEAR, disable_corrector=[0, 3, 4],
                                                                   timestep_spacing="trailing",
                                                                   final_sigmas_type="sigma_min"), 10, {},
                                     "UniPC bh2, order 2, disable_corrector [0, 3, 4], trailing, sigma_min"),
    "unipc_bh2_o3_karras_sigma_min": (UniPCMultistepScheduler, dict(LINEAR, solver_order=3, use_karras_sigmas=True,
                                                                    final_sigmas_type="sigma_min"), 8, {},
                                      "UniPC bh2, order 3, Karras, final_sigmas_type sigma_min (last sigma the "
                                      "Karras minimum: h = 0 at the first-order last step)"),
    # Dynamic thresholding (thresholding True): per-sample quantile of |x0| (ratio below 1 so the quantile
    # interpolates between two sorted values), clamped to [1, sample_max_value]; it overrides clip_sample.
    "ddim_thresh": (DDIMScheduler, dict(LINEAR, thresholding=True, dynamic_thresholding_ratio=0.9,
                                        sample_max_value=2.5), 10, dict(eta=0.0),
                    "DDIM eta 0, dynamic thresholding (ratio 0.9, max 2.5; clip_sample True is overridden)"),
    "ddim_thresh_eta07_vpred": (DDIMScheduler, dict(LINEAR, thresholding=True, dynamic_thresholding_ratio=0.995,
                                                    sample_max_value=1.5, prediction_type="v_prediction"), 10,
                                dict(eta=0.7), "DDIM eta 0.7, v_prediction, dynamic thresholding (0.995, 1.5)"),
    "ddpm_thresh_n10": (DDPMScheduler, dict(LINEAR, variance_type="fixed_small", thresholding=True,
                                            dynamic_thresholding_ratio=0.9, sample_max_value=2.0), 10, {},
                        "DDPM, 10 steps, dynamic thresholding (ratio 0.9, max 2)"),
    "dpmpp2m_thresh": (DPMSolverMultistepScheduler, dict(LINEAR, algorithm_type="dpmsolver++", solver_order=2,
                                                         lower_order_final=True, thresholding=True,
                                                         dynamic_thresholding_ratio=0.9, sample_max_value=3.0),
                       10, {}, "DPM-Solver++ 2M with dynamic thresholding (ratio 0.9, max 3)"),
    "dpmpp2m_sde_thresh": (DPMSolverMultistepScheduler, dict(LINEAR, algorithm_type="sde-dpmsolver++",
                                                             solver_order=2, lower_order_final=True,
                                                             thresholding=True, dynamic_thresholding_ratio=0.9,
                                                             sample_max_value=3.0), 10, {},
                           "DPM++ 2M SDE with dynamic thresholding (ratio 0.9, max 3; noise injected)"),
    "unipc_bh2_o2_thresh": (UniPCMultistepScheduler, dict(LINEAR, thresholding=True, dynamic_thresholding_ratio=0.9,
                                                          sample_max_value=3.0), 10, {},
                            "UniPC bh2, order 2, predict_x0, dynamic thresholding (ratio 0.9, max 3)"),
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


def run_case(name, cls, cfg, n, step_kwargs, desc, seed):
    out_dir = os.path.join(HERE, name)
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    sched = cls(**cfg)
    sched.save_config(out_dir)
    sched.set_timesteps(n)

    g_init = torch.Generator().manual_seed(seed)
    x_T = torch.randn(SHAPE, generator=g_init)
    sample = x_T * sched.init_noise_sigma
    gen = torch.Generator().manual_seed(seed + 1)
    accepts_gen = "generator" in cls.step.__code__.co_varnames

    rec = {k: [] for k in ["timestep", "sample", "model_input", "model_output", "noise", "noise_drawn",
                           "prev_sample", "pred_original_sample"]}
    timesteps = sched.timesteps.clone()
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
        assert len(_drawn) <= 1, (name, len(_drawn))
        rec["timestep"].append(torch.tensor(float(t)))
        rec["sample"].append(sample.clone())
        rec["model_input"].append(model_input.clone())
        rec["model_output"].append(model_output.clone())
        rec["noise"].append(_drawn[0].reshape(SHAPE) if _drawn else torch.zeros(SHAPE))
        rec["noise_drawn"].append(torch.tensor(1.0 if _drawn else 0.0))
        rec["prev_sample"].append(out.prev_sample.clone())
        pos = getattr(out, "pred_original_sample", None)
        rec["pred_original_sample"].append(pos.clone() if pos is not None else None)
        sample = out.prev_sample

    tensors = {k: torch.stack(v).float().contiguous() for k, v in rec.items() if k != "pred_original_sample"}
    if torch.equal(tensors["model_input"], tensors["sample"]):
        del tensors["model_input"]  # scale_model_input is the identity for this scheduler
    if all(p is not None for p in rec["pred_original_sample"]):
        tensors["pred_original_sample"] = torch.stack(rec["pred_original_sample"]).float().contiguous()
    tensors["x_T"] = x_T
    tensors["timesteps"] = timesteps.float()
    tensors["init_noise_sigma"] = torch.tensor([float(sched.init_noise_sigma)])
    tensors["alphas_cumprod"] = sched.alphas_cumprod.float()
    if hasattr(sched, "sigmas"):
        tensors["sigmas"] = torch.as_tensor(sched.sigmas).float()
    meta = dict(name=name, scheduler=cls.__name__, description=desc, num_inference_steps=n, step_kwargs=step_kwargs,
                num_model_calls=len(timesteps), generator_seed=seed + 1 if accepts_gen else None, x_T_seed=seed,
                fake_model="model_output = 0.3 * model_input + 0.1 * sin(t / 100 + arange(32).reshape(2,1,4,4))",
                torch=torch.__version__, diffusers=diffusers.__version__)
    save_file(tensors, os.path.join(out_dir, "steps.safetensors"), metadata={"case": json.dumps(meta)})
    fin = tensors["prev_sample"][-1]
    return dict(calls=len(timesteps), noise_steps=int(tensors["noise_drawn"].sum()),
                final_absmax=round(float(fin.abs().max()), 4), final_std=round(float(fin.std()), 4))


def main():
    torch.set_num_threads(1)
    _install_recorder()
    only = set(sys.argv[1:])  # case names: regenerate just those (seeds stay tied to each case's position)
    summary = {}
    for i, (name, (cls, cfg, n, kw, desc)) in enumerate(CASES.items()):
        if only and name not in only:
            continue
        summary[name] = run_case(name, cls, cfg, n, kw, desc, seed=100 + 10 * i)
    print(json.dumps(dict(torch=torch.__version__, diffusers=diffusers.__version__, cases=summary), indent=1))


if __name__ == "__main__":
    main()
