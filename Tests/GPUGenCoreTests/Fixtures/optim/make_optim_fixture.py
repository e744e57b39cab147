#!/usr/bin/env python3
"""Writes optim.json: PyTorch/diffusers reference values for Tests/GPUGenCoreTests/OptimTests.swift.

Run from this folder: python3 make_optim_fixture.py (needs torch and diffusers; CPU only).
Every tensor is float32; JSON stores each value as the shortest double that round-trips it.
"""
import json
import math

import torch
from diffusers.optimization import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup
from diffusers.training_utils import EMAModel

N = 37  # odd: exercises the tails of vectorised loops
STEPS = 5


def floats(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def make_inputs():
    g = torch.Generator().manual_seed(20240601)
    param = torch.randn(N, generator=g, dtype=torch.float32)
    grads = [torch.randn(N, generator=g, dtype=torch.float32) * (0.5 + s) for s in range(STEPS)]
    return param, grads


LRS = [0.05, 0.04, 0.03, 0.05, 0.02]


def run_case(name, make_opt, param0, grads, clip=None):
    p = torch.nn.Parameter(param0.clone())
    opt = make_opt([p])
    history, norms, scales = [], [], []
    for s in range(STEPS):
        for group in opt.param_groups:
            group["lr"] = LRS[s]
        p.grad = grads[s].clone()
        if clip is not None:
            norm = torch.nn.utils.clip_grad_norm_([p], clip, foreach=False)
            norms.append(float(norm))
            scales.append(float(torch.clamp(clip / (norm + 1e-6), max=1.0)))
        opt.step()
        history.append(floats(p))
    state = opt.state[p]
    out = {"name": name, "params": history, "state": {}}
    for key in ("exp_avg", "exp_avg_sq", "momentum_buffer"):
        if key in state and state[key] is not None:
            out["state"][key] = floats(state[key])
    if clip is not None:
        out["clip"] = clip
        out["norms"] = norms
        out["scales"] = scales
    return out


def optimizer_cases(param0, grads):
    SGD, Adam, AdamW = torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW
    specs = [
        ("sgd", {"kind": "sgd"}, lambda ps: SGD(ps, lr=0.1, foreach=False)),
        ("sgd_momentum", {"kind": "sgd", "momentum": 0.9},
         lambda ps: SGD(ps, lr=0.1, momentum=0.9, foreach=False)),
        ("sgd_nesterov", {"kind": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
         lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01, foreach=False)),
        ("sgd_dampening", {"kind": "sgd", "momentum": 0.9, "dampening": 0.5, "weight_decay": 0.05},
         lambda ps: SGD(ps, lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.05, foreach=False)),
        ("adam_wd", {"kind": "adam", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.1},
         lambda ps: Adam(ps, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, foreach=False)),
        ("adam_low_beta1", {"kind": "adam", "beta1": 0.3, "beta2": 0.99, "eps": 1e-6, "weight_decay": 0.0},
         lambda ps: Adam(ps, lr=0.01, betas=(0.3, 0.99), eps=1e-6, foreach=False)),
        ("adamw_wd", {"kind": "adamw", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.1},
         lambda ps: AdamW(ps, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, foreach=False)),
    ]
    cases = []
    for name, config, make in specs:
        case = run_case(name, make, param0, grads)
        case["config"] = config
        cases.append(case)
    # Clipped AdamW: clip_grad_norm_ before every step (max_norm below the gradient norms).
    config = {"kind": "adamw", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01}
    case = run_case(
        "adamw_clipped",
        lambda ps: AdamW(ps, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, foreach=False),
        param0, grads, clip=2.0)
    case["config"] = config
    cases.append(case)
    return cases


def clip_cases():
    g = torch.Generator().manual_seed(7)
    shapes = [[37], [3, 5], [1], [2, 3, 4, 5]]
    grads = [torch.randn(s, generator=g, dtype=torch.float32) for s in shapes]
    out = []
    for max_norm in (1.0, 1000.0):
        params = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
        for p, gr in zip(params, grads):
            p.grad = gr.clone()
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=False)
        out.append({
            "max_norm": max_norm,
            "shapes": shapes,
            "grads": [floats(gr) for gr in grads],
            "norm": float(norm),
            "scale": float(torch.clamp(max_norm / (norm + 1e-6), max=1.0)),
            "clipped": [floats(p.grad) for p in params],
        })
    return out


def lr_cases():
    steps = [0, 1, 2, 5, 9, 10, 11, 20, 33, 49, 50, 55]
    out = []
    for kind, warmup, total in (("constant", 10, 50), ("constant", 0, 50), ("cosine", 10, 50),
                                ("cosine", 0, 40)):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
        if kind == "constant":
            sched = get_constant_schedule_with_warmup(opt, num_warmup_steps=warmup)
        else:
            sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=warmup, num_training_steps=total)
        values = {}
        for s in range(max(steps) + 1):
            if s in steps:
                values[s] = sched.get_last_lr()[0]
            opt.step()
            sched.step()
        out.append({"kind": kind, "base": 1e-3, "warmup": warmup, "total": total, "steps": steps,
                    "values": [values[s] for s in steps]})
    return out


def ema_cases():
    configs = [
        {"decay": 0.9999, "min_decay": 0.0, "update_after_step": 0, "use_ema_warmup": False,
         "inv_gamma": 1.0, "power": 2 / 3},
        {"decay": 0.9999, "min_decay": 0.0, "update_after_step": 0, "use_ema_warmup": True,
         "inv_gamma": 1.0, "power": 0.75},
        {"decay": 0.995, "min_decay": 0.5, "update_after_step": 3, "use_ema_warmup": True,
         "inv_gamma": 2.0, "power": 2 / 3},
        {"decay": 0.9, "min_decay": 0.2, "update_after_step": 2, "use_ema_warmup": False,
         "inv_gamma": 1.0, "power": 2 / 3},
    ]
    steps = list(range(0, 25)) + [100, 1000, 10000, 100000, 1000000]
    out = []
    for c in configs:
        ema = EMAModel([torch.nn.Parameter(torch.zeros(1))], **c)
        out.append({**c, "steps": steps, "decays": [ema.get_decay(s) for s in steps]})
    return out


def ema_run(param0, grads):
    # EMAModel.step over a parameter that changes every step (the default, foreach=False path).
    p = torch.nn.Parameter(param0.clone())
    ema = EMAModel([p], decay=0.999, use_ema_warmup=False)
    shadows, decays, values = [], [], []
    for s in range(STEPS):
        with torch.no_grad():
            p.add_(grads[s], alpha=-0.1)
        values.append(floats(p))
        ema.step([p])
        decays.append(ema.cur_decay_value)
        shadows.append(floats(ema.shadow_params[0]))
    return {"decay": 0.999, "params": values, "decays": decays, "shadows": shadows}


def init_cases():
    # PyTorch's default bounds (reset_parameters: kaiming_uniform_(a=sqrt(5)) and the bias bound).
    layers = [
        ("conv2d", torch.nn.Conv2d(3, 8, 3)),
        ("conv2d_grouped", torch.nn.Conv2d(4, 6, 1, groups=2)),
        ("conv2d_5x5", torch.nn.Conv2d(32, 64, 5)),
        ("linear", torch.nn.Linear(37, 5)),
    ]
    out = []
    for name, layer in layers:
        fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(layer.weight)
        gain = torch.nn.init.calculate_gain("leaky_relu", math.sqrt(5))
        out.append({
            "name": name,
            "weight_shape": list(layer.weight.shape),
            "fan_in": fan_in,
            "weight_bound": math.sqrt(3.0) * gain / math.sqrt(fan_in),
            "bias_bound": 1 / math.sqrt(fan_in),
        })
    return out


def main():
    torch.set_num_threads(1)
    param0, grads = make_inputs()
    fixture = {
        "torch": torch.__version__,
        "param": floats(param0),
        "grads": [floats(g) for g in grads],
        "lrs": LRS,
        "optimizers": optimizer_cases(param0, grads),
        "clip": clip_cases(),
        "lr_schedules": lr_cases(),
        "ema_decay": ema_cases(),
        "ema_run": ema_run(param0, grads),
        "init": init_cases(),
    }
    with open("optim.json", "w") as f:
        json.dump(fixture, f, indent=None, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
