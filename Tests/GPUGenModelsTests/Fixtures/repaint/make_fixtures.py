#!/usr/bin/env python3
"""Reference traces of diffusers' RePaintScheduler for gpugen's `Inpainting` port.

For each case: configure RePaintScheduler, set_timesteps(N, jump_length, jump_n_sample), and run the loop of
diffusers' RePaintPipeline on a fixed [2, 1, 4, 4] sample, original image and 0/1 mask (1 = known), with a
deterministic fake model:

    model_output = 0.3 * sample + 0.1 * sin(t / 100 + arange(32).reshape(2, 1, 4, 4))

    t_last = timesteps[0] + 1
    for t in timesteps:
        if t < t_last: sample = step(model_output(sample, t), t, sample, original, mask, generator).prev_sample
        else:          sample = undo_step(sample, t_last, generator)
        t_last = t

Noise drawn inside step()/undo_step() is recorded by wrapping `randn_tensor` in the scheduler module. step()
draws one tensor (used for the known part and, with eta > 0, the unknown part). undo_step(x, t) draws n =
T // N tensors z_i and applies x <- sqrt(1 - b_{t+i}) x + sqrt(b_{t+i}) z_i in turn; that is
x_out = sqrt(a) x + sum_i c_i z_i with a = prod_i (1 - b_{t+i}), c_i = sqrt(b_{t+i}) prod_{j>i} sqrt(1 - b_{t+j}),
and sum_i c_i^2 = 1 - a. The trace stores, per undo, the equivalent single draw
z = sum_i c_i z_i / sqrt(1 - a) (computed in float64 from diffusers' own noises and betas), so a port that
draws one N(0, 1) tensor per undo can replay it; the port's output is still compared with diffusers' x_out.

Output per case, in <case>/:
  scheduler_config.json   diffusers' own save_config output
  steps.safetensors       per action k: kind (0 step, 1 undo), timestep (step: t; undo: t_last), sample,
                          model_output (zeros for undo), noise (step: the draw; undo: the equivalent draw),
                          prev_sample (diffusers' output); plus original, mask, x_T, timesteps.
                          JSON metadata under the key "case".
timesteps.json            set_timesteps(N, J, R) for a few (T, N, J, R), the list diffusers builds.

Run: python3 make_fixtures.py   (from anywhere; writes next to this file; needs torch, diffusers, safetensors)
"""
import json
import os
import shutil

import torch
import diffusers
from diffusers import RePaintScheduler
from diffusers.schedulers import scheduling_repaint
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPE = (2, 1, 4, 4)
LINEAR = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")

# name -> (config kwargs, N, jump_length, jump_n_sample, description)
CASES = {
    "repaint_eta0": (dict(LINEAR, eta=0.0), 20, 5, 3, "linear betas, eta 0 (diffusers' pipeline default), clip"),
    "repaint_eta1": (dict(LINEAR, eta=1.0), 20, 5, 3, "linear betas, eta 1 (DDPM-like noise shared with the known part)"),
    "repaint_cos_noclip": (dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", eta=0.5,
                                clip_sample=False), 10, 2, 2, "squaredcos_cap_v2, eta 0.5, no clipping"),
    "repaint_r1": (dict(LINEAR, eta=0.0), 10, 10, 1, "R = 1: no jumps, the plain replace-the-known-region baseline"),
}

TIMESTEP_CASES = [(1000, 250, 10, 10), (1000, 50, 10, 10), (1000, 20, 5, 3), (1000, 25, 5, 5), (1000, 10, 10, 1),
                  (1000, 10, 3, 4), (1000, 7, 2, 2), (100, 30, 4, 3), (1000, 1, 1, 1), (1000, 12, 20, 5)]

_drawn = []


def _install_recorder():
    orig = scheduling_repaint.randn_tensor

    def wrapper(*a, **kw):
        out = orig(*a, **kw)
        _drawn.append(out.detach().clone())
        return out
    scheduling_repaint.randn_tensor = wrapper


def fake_model(sample, t):
    phase = torch.arange(32, dtype=torch.float32).reshape(SHAPE)
    return 0.3 * sample + 0.1 * torch.sin(float(t) / 100.0 + phase)


def run_case(name, cfg, n, jl, jn, desc, seed):
    out_dir = os.path.join(HERE, name)
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    sched = RePaintScheduler(**cfg)
    sched.save_config(out_dir)
    sched.set_timesteps(n, jump_length=jl, jump_n_sample=jn)
    g = torch.Generator().manual_seed(seed)
    x_T = torch.randn(SHAPE, generator=g)
    original = torch.rand(SHAPE, generator=g) * 2 - 1
    mask = (torch.rand(SHAPE, generator=g) < 0.5).float()
    gen = torch.Generator().manual_seed(seed + 1)
    rec = {k: [] for k in ["kind", "timestep", "sample", "model_output", "noise", "prev_sample"]}
    sample = x_T.clone()
    timesteps = sched.timesteps.clone()
    t_last = int(timesteps[0]) + 1
    betas = sched.betas.double()
    for t in timesteps:
        t = int(t)
        _drawn.clear()
        if t < t_last:
            m = fake_model(sample, t)
            out = sched.step(m, t, sample, original, mask, generator=gen).prev_sample
            assert len(_drawn) == 1
            kind, ts, noise = 0.0, t, _drawn[0].reshape(SHAPE)
        else:
            m = torch.zeros(SHAPE)
            out = sched.undo_step(sample, t_last, generator=gen)
            k = len(_drawn)
            assert k == sched.config.num_train_timesteps // sched.num_inference_steps
            b = betas[t_last:t_last + k]
            c = [float(b[i].sqrt() * torch.prod((1 - b[i + 1:]).sqrt())) for i in range(k)]
            acc = sum(ci * z.double() for ci, z in zip(c, _drawn))
            noise = (acc / (1 - torch.prod(1 - b)).sqrt()).float().reshape(SHAPE)
            kind, ts = 1.0, t_last
        rec["kind"].append(torch.tensor(kind))
        rec["timestep"].append(torch.tensor(float(ts)))
        rec["sample"].append(sample.clone())
        rec["model_output"].append(m.clone())
        rec["noise"].append(noise)
        rec["prev_sample"].append(out.clone())
        sample = out
        t_last = t
    tensors = {k: torch.stack(v).float().contiguous() for k, v in rec.items()}
    tensors.update(x_T=x_T, original=original, mask=mask, timesteps=timesteps.float())
    meta = dict(name=name, description=desc, num_inference_steps=n, jump_length=jl, jump_n_sample=jn,
                actions=len(timesteps), generator_seed=seed + 1, x_T_seed=seed,
                fake_model="model_output = 0.3 * sample + 0.1 * sin(t / 100 + arange(32).reshape(2,1,4,4))",
                torch=torch.__version__, diffusers=diffusers.__version__)
    save_file(tensors, os.path.join(out_dir, "steps.safetensors"), metadata={"case": json.dumps(meta)})
    known = mask.bool()
    assert torch.equal(sample[known], original[known]), name
    return dict(actions=len(timesteps), steps=int((tensors["kind"] == 0).sum()))


def main():
    torch.set_num_threads(1)
    _install_recorder()
    summary = {}
    for i, (name, (cfg, n, jl, jn, desc)) in enumerate(CASES.items()):
        summary[name] = run_case(name, cfg, n, jl, jn, desc, seed=300 + 10 * i)
    lists = []
    for (T, n, jl, jn) in TIMESTEP_CASES:
        s = RePaintScheduler(num_train_timesteps=T)
        s.set_timesteps(n, jump_length=jl, jump_n_sample=jn)
        lists.append(dict(num_train_timesteps=T, num_inference_steps=n, jump_length=jl, jump_n_sample=jn,
                          timesteps=[int(t) for t in s.timesteps]))
    with open(os.path.join(HERE, "timesteps.json"), "w") as f:
        json.dump(dict(diffusers=diffusers.__version__, cases=lists), f, indent=0)
    print(json.dumps(dict(torch=torch.__version__, diffusers=diffusers.__version__, cases=summary), indent=1))


if __name__ == "__main__":
    main()
