#!/usr/bin/env python3
"""Training parity: replay a `gpugen train diffusion` run step for step in PyTorch/diffusers, and compare.

docs/TRAINING.md is the contract. Given the initial weights gpugen writes with `--steps 0`, this script draws
exactly the same batches (Philox stream 10: data order; 11: timesteps; 12: noise — Tools/gpugen_random.py,
bit-identical to gpugen's CPU backend), computes the same loss and takes the same AdamW steps, and logs
`log_torch.csv` with the columns of gpugen's `log.csv` (step,loss,lr,grad_norm,ema_decay,seconds; gpugen adds rss_mb,peak_rss_mb).

Workflow (the same --seed, --batch-size and hyper-parameters on both sides):
  gpugen train diffusion --config Benchmarks/unet/config.json --data fashion-mnist --steps 0 \\
      --batch-size 64 --seed 1 --device cpu --out /tmp/init
  gpugen train diffusion --config Benchmarks/unet/config.json --data fashion-mnist --steps 200 \\
      --batch-size 64 --seed 1 --lr 1e-4 --warmup 20 --device cpu --out /tmp/g
  python3 Tools/train_parity.py --init /tmp/init --steps 200 --batch-size 64 --seed 1 --lr 1e-4 --warmup 20 \\
      --out /tmp/t
  python3 Tools/train_parity.py --compare /tmp/g/log.csv /tmp/t/log_torch.csv --plot docs/training_parity.png \\
      [--weights /tmp/g/checkpoint/training_state/model.safetensors /tmp/t/model.safetensors]

Modes
  (default)        train: needs --init DIR (gpugen's --out of the --steps 0 run, or its checkpoint/ folder, or
                   any diffusers pipeline folder with unet/ and scheduler/). The weights are unet/'s, replaced by
                   checkpoint/training_state/model.safetensors (the raw weights) when that exists. Writes
                   OUT/log_torch.csv, and at the end OUT/model.safetensors (raw weights) and
                   OUT/ema.safetensors (EMA weights).
  --make-init DIR  write a gpugen-style initial checkpoint without gpugen, for testing this script:
                   DIR/checkpoint/{model_index.json, scheduler/scheduler_config.json (DDPMScheduler()),
                   unet/ (UNet2DModel(**--config) under torch.manual_seed(--seed))}.
  --compare G T    compare two logs (G: gpugen's log.csv, T: the reference, log_torch.csv); --plot PNG draws the
                   loss curves (log y) and their relative difference. Exit status 1 if a tolerance fails.

What is reproduced exactly (identical inputs): the initial weights; the epoch order (stable argsort of stream-10
words; ⌊N/B⌋ batches an epoch, never straddling); the timesteps (stream 11, word0 mod T); the noise (stream 12,
randomNormal layout); the data (uint8 → float32 x/127.5 − 1, padded 28 → 32 with −1, 2 before and 2 after);
class labels when the UNet config has num_class_embeds. Then in float32: x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε with
DDPMScheduler.add_noise (ᾱ from the checkpoint's scheduler config, diffusers computes it in float32); target ε
or v (DDPMScheduler.get_velocity); loss = F.mse_loss over every element; grads clipped by
torch.nn.utils.clip_grad_norm_(params, clip) (the logged grad_norm is its return value: the norm *before*
clipping; torch scales by clip/(norm + 1e-6) when norm > clip); torch.optim.AdamW(β 0.9/0.999, eps 1e-8,
weight_decay) with lr·min(1, (s+1)/warmup) at step s; EMA (diffusers EMAModel rule) with decay 0 at
s = 0, then min(ema_decay, (1+s)/(10+s)), or with --ema-warmup 1 − (1+s)^(−3/4) capped at ema_decay.

Assumptions where docs/TRAINING.md is silent (check them against gpugen's implementation)
  * --data fashion-mnist is the 60000-image training split (train-*-ubyte), N = 60000.
  * log.csv: `lr` is the rate used by that row's step; `grad_norm` the global norm before clipping; `ema_decay`
    the decay used after that step (0 on row 1: diffusers' get_decay(1) = 0, the EMA becomes a copy of the
    weights; 2/11 on row 2); `seconds` the wall-clock time of that step (not compared).
  * --ema-decay defaults to 0.9999 (diffusers EMAModel's default); --warmup 0 means no warmup.
  * --lr-schedule cosine (formula not in the contract): lr·½(1 + cos(π·p)), p = (s+1−warmup)/(steps−warmup),
    after the warmup.
  * Weight decay applies to every parameter (torch AdamW: p ← p·(1 − lr·wd) before the Adam update, with the
    warmed-up lr); Adam's ε is added to √v̂ (torch: √v/√(1−β₂ᵗ) + ε).
  * Class-conditional models get the true label every step (no label dropout).
  * ᾱ is diffusers' float32 cumprod; gpugen may compute it in float64 (differences ~1e-7, inside tolerance).

Tolerances (--compare), and why
  * steps 1..10: every |loss_g − loss_t| / loss_t ≤ 1e-3. The inputs are identical, the initial weights are
    identical, so only float32 rounding differs (convolution/GEMM summation order, libm): a few 1e-6 for the
    first loss; the early Adam steps (≈ lr·sign(g)) do not amplify it much. 1e-3 catches any contract
    mismatch (a wrong batch, timestep, noise, target, lr or clipping changes the loss by ≫ 1e-3).
  * all steps, 20-step moving average (trailing mean of rows s−19..s): max relative difference ≤ 3%. After
    many steps the weights drift apart (Adam divides by √v̂, so tiny gradient differences in small
    coordinates grow), but both runs see the same batches, so the smoothed curves must stay together.
  * the per-step maximum over all steps and the mean moving-average difference are printed for information.
  Measured with this script against itself (batch 16, 100 steps, lr 1e-4, warmup 10): perturbing the noise by
  ≤ 2 ulp (--libm f64 vs libm) moved the loss by ≤ 1.8e-7 relative per step and the 20-step mean by ≤ 2.7e-8;
  training here does not amplify float32 noise much, so the tolerances leave a wide margin for gpugen's
  different summation orders, yet any contract mismatch (different batches: ~10–50 %) fails.
  Override with --tol-first, --tol-ma, --ma-window.
"""
import argparse
import csv
import gzip
import json
import math
import os
import struct
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpugen_random as gr  # noqa: E402

DATA_DIR = "/usr/share/datasets/fashion-mnist"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLUMNS = ["step", "loss", "lr", "grad_norm", "ema_decay", "seconds"]


# ---------------------------------------------------------------------------------------------------------
# Data

def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find_idx(data_dir, name):
    for p in (os.path.join(data_dir, name + ".gz"), os.path.join(data_dir, name)):
        if os.path.exists(p):
            return p
    raise SystemExit(f"missing {name}(.gz) in {data_dir}")


def load_fashion_mnist(data_dir):
    """The training split: uint8 images [60000, 28, 28] and labels [60000]."""
    images = read_idx(find_idx(data_dir, "train-images-idx3-ubyte"))
    labels = read_idx(find_idx(data_dir, "train-labels-idx1-ubyte")).astype(np.int64)
    return images, labels


def to_model_input(u8, size):
    """uint8 [B, h, w] (or [B, C, h, w]) to float32 [B, C, size, size]: x/127.5 − 1, centred −1 padding."""
    if u8.ndim == 3:
        u8 = u8[:, None]
    b, c, h, w = u8.shape
    if h > size or w > size:
        raise SystemExit(f"images are {h}×{w}, larger than sample_size {size}: area resizing is not implemented")
    x = u8.astype(np.float32) / np.float32(127.5) - np.float32(1)
    out = np.full((b, c, size, size), -1, dtype=np.float32)
    top, left = (size - h) // 2, (size - w) // 2
    out[:, :, top:top + h, left:left + w] = x
    return out


# ---------------------------------------------------------------------------------------------------------
# Init folder

def checkpoint_dir(path):
    """gpugen's --out DIR, or DIR/checkpoint, or a pipeline folder: the folder that holds unet/ and scheduler/."""
    for d in (os.path.join(path, "checkpoint"), path):
        if os.path.isdir(os.path.join(d, "unet")):
            return d
    raise SystemExit(f"{path}: no unet/ (expected gpugen's --out folder or its checkpoint/)")


def make_init(args):
    import torch
    from diffusers import DDPMScheduler, UNet2DModel
    cfg = json.load(open(args.config))
    if args.class_conditional:
        cfg["num_class_embeds"] = 10
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    torch.manual_seed(args.seed)
    unet = UNet2DModel(**cfg)
    ck = os.path.join(args.make_init, "checkpoint")
    unet.save_pretrained(os.path.join(ck, "unet"), safe_serialization=True)
    DDPMScheduler().save_pretrained(os.path.join(ck, "scheduler"))
    json.dump({"_class_name": "DDPMPipeline", "_diffusers_version": "0.42.1",
               "scheduler": ["diffusers", "DDPMScheduler"], "unet": ["diffusers", "UNet2DModel"]},
              open(os.path.join(ck, "model_index.json"), "w"), indent=2)
    print(f"wrote {ck} ({sum(p.numel() for p in unet.parameters())} parameters, torch seed {args.seed})")


# ---------------------------------------------------------------------------------------------------------
# Training

def lr_at(s, args):
    f = min(1.0, (s + 1) / args.warmup) if args.warmup > 0 else 1.0
    if args.lr_schedule == "cosine" and s + 1 > args.warmup:
        # Not fixed by docs/TRAINING.md: cosine from the end of the warmup to 0 at the last step.
        p = (s + 1 - args.warmup) / max(1, args.steps - args.warmup)
        f = 0.5 * (1 + math.cos(math.pi * min(1.0, p)))
    return args.lr * f


def ema_decay_at(s, args):
    # diffusers EMAModel.get_decay(optimization_step = s + 1): step = s; 0 when step <= 0 (the first update
    # makes the EMA a copy of the weights), as docs/TRAINING.md says.
    if s <= 0:
        return 0.0
    if args.ema_warmup:
        d = 1 - (1 + s / args.ema_inv_gamma) ** (-args.ema_power)
    else:
        d = (1 + s) / (10 + s)
    return max(0.0, min(args.ema_decay, d))


def train(args):
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler, UNet2DModel
    from safetensors.torch import save_file

    torch.set_num_threads(args.threads)
    ck = checkpoint_dir(args.init)
    unet = UNet2DModel.from_pretrained(os.path.join(ck, "unet"), low_cpu_mem_usage=False).float().train()
    raw = os.path.join(ck, "training_state", "model.safetensors")
    if os.path.exists(raw):
        # The raw weights (what gpugen trains from; at step 0 they equal the EMA weights in unet/, but unet/
        # could be stored in a narrower dtype).
        from safetensors.torch import load_file
        missing, unexpected = unet.load_state_dict({k: v.float() for k, v in load_file(raw).items()}, strict=False)
        if missing or unexpected:
            raise SystemExit(f"{raw}: missing {missing[:3]}…, unexpected {unexpected[:3]}…")
        print(f"initial weights: {raw}")
    sched = DDPMScheduler.from_pretrained(os.path.join(ck, "scheduler"))
    cfg = unet.config
    T = sched.config.num_train_timesteps
    pred = args.prediction
    sp = sched.config.get("prediction_type")
    if sp and sp != {"epsilon": "epsilon", "v": "v_prediction"}[pred]:
        print(f"warning: --prediction {pred} but the scheduler config says {sp}", file=sys.stderr)
    state = os.path.join(ck, "training_state", "state.json")
    if os.path.exists(state):
        st = json.load(open(state))
        if "seed" in st and int(st["seed"]) != args.seed:
            print(f"warning: --seed {args.seed} but {state} has seed {st['seed']}", file=sys.stderr)

    images, labels = load_fashion_mnist(args.data)
    if args.limit:
        images, labels = images[:args.limit], labels[:args.limit]
    N, B = len(images), args.batch_size
    per_epoch = N // B
    if per_epoch == 0:
        raise SystemExit(f"batch size {B} is larger than the data set ({N} images)")
    size, C = cfg.sample_size, cfg.in_channels
    chw = C * size * size
    conditional = cfg.num_class_embeds is not None

    params = [p for p in unet.parameters()]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=args.weight_decay)
    ema = [p.detach().clone() for p in params]

    os.makedirs(args.out, exist_ok=True)
    log_path = os.path.join(args.out, "log_torch.csv")
    f = open(log_path, "w", newline="")
    w = csv.writer(f)
    w.writerow(COLUMNS)
    order, order_epoch = None, -1
    t0 = time.perf_counter()
    for s in range(args.steps):
        ts = time.perf_counter()
        epoch, b = divmod(s, per_epoch)
        if epoch != order_epoch:
            order, order_epoch = gr.epoch_order(args.seed, N, epoch), epoch
        idx = order[b * B:(b + 1) * B]
        x0 = torch.from_numpy(to_model_input(images[idx], size))
        if x0.shape[1] != C:
            raise SystemExit(f"data has {x0.shape[1]} channels, the model {C}")
        t = torch.from_numpy(gr.timesteps(args.seed, B, s, T))
        eps = torch.from_numpy(gr.noise(args.seed, B, chw, s, libm=args.libm).reshape(B, C, size, size))
        xt = sched.add_noise(x0, eps, t)
        target = eps if pred == "epsilon" else sched.get_velocity(x0, eps, t)
        cl = torch.from_numpy(labels[idx]) if conditional else None

        lr = lr_at(s, args)
        for g in opt.param_groups:
            g["lr"] = lr
        out = unet(xt, t, class_labels=cl).sample
        loss = F.mse_loss(out.float(), target.float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.clip_grad > 0:
            gn = torch.nn.utils.clip_grad_norm_(params, args.clip_grad)
        else:
            gn = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
        opt.step()
        d = ema_decay_at(s, args)
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.sub_((1 - d) * (e - p))
        now = time.perf_counter()
        el = now - t0
        w.writerow([s + 1, f"{loss.item():.9g}", f"{lr:.9g}", f"{gn.item():.9g}", f"{d:.9g}", f"{now - ts:.3f}"])
        f.flush()
        if args.verbose or s < 3 or (s + 1) % 10 == 0 or s + 1 == args.steps:
            print(f"step {s + 1:5d}  loss {loss.item():.6f}  lr {lr:.3g}  grad_norm {gn.item():.4g}  "
                  f"ema {d:.4g}  {el:.1f}s", flush=True)
    f.close()
    names = [n for n, _ in unet.named_parameters()]
    save_file({n: p.detach().contiguous() for n, p in zip(names, params)}, os.path.join(args.out, "model.safetensors"))
    save_file({n: e.contiguous() for n, e in zip(names, ema)}, os.path.join(args.out, "ema.safetensors"))
    print(f"wrote {log_path}, model.safetensors, ema.safetensors")


# ---------------------------------------------------------------------------------------------------------
# Comparison

def read_log(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"{path}: no rows")
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0] if k}


def moving_average(x, k):
    """Trailing mean over k rows (only full windows)."""
    if len(x) < k:
        return np.array([])
    c = np.cumsum(np.insert(x.astype(np.float64), 0, 0))
    return (c[k:] - c[:-k]) / k


def compare(args):
    g, t = read_log(args.compare[0]), read_log(args.compare[1])
    n = min(len(g["loss"]), len(t["loss"]))
    if len(g["loss"]) != len(t["loss"]):
        print(f"warning: {len(g['loss'])} vs {len(t['loss'])} rows; comparing the first {n}")
    steps = g["step"][:n]
    if not np.array_equal(steps, t["step"][:n]):
        raise SystemExit("the step columns differ")
    lg, lt = g["loss"][:n], t["loss"][:n]
    rel = np.abs(lg - lt) / np.abs(lt)
    k = args.ma_window
    mg, mt = moving_average(lg, k), moving_average(lt, k)
    mrel = np.abs(mg - mt) / np.abs(mt) if len(mt) else np.array([])
    first = rel[:10]
    ok = True
    print(f"{n} steps; loss gpugen {lg[0]:.6f} → {lg[-1]:.6f}, torch {lt[0]:.6f} → {lt[-1]:.6f}")
    for name in ("lr", "ema_decay"):
        if name in g and name in t:
            d = np.max(np.abs(g[name][:n] - t[name][:n]) / np.maximum(np.abs(t[name][:n]), 1e-30))
            print(f"{name:10s} max relative difference {d:.3g}")
            if d > 1e-5:
                print(f"  FAIL: the {name} columns differ (a hyper-parameter or schedule mismatch)")
                ok = False
    if "grad_norm" in g and "grad_norm" in t:
        gd = np.abs(g["grad_norm"][:n] - t["grad_norm"][:n]) / np.abs(t["grad_norm"][:n])
        print(f"grad_norm  relative difference: first 10 steps max {gd[:10].max():.3g}, all steps max {gd.max():.3g}")
    print(f"loss       relative difference, first {len(first)} steps: max {first.max():.3g} "
          f"(tolerance {args.tol_first:g}); per step: " + " ".join(f"{v:.2g}" for v in first))
    if first.max() > args.tol_first:
        ok = False
        print(f"  FAIL: step {int(steps[np.argmax(first)])} differs by {first.max():.3g}")
    print(f"loss       relative difference, all steps: max {rel.max():.3g} (step {int(steps[np.argmax(rel)])}), "
          f"mean {rel.mean():.3g}")
    if len(mrel):
        print(f"{k}-step moving average relative difference: mean {mrel.mean():.3g}, max {mrel.max():.3g} "
              f"(tolerance {args.tol_ma:g})")
        if mrel.max() > args.tol_ma:
            ok = False
            print(f"  FAIL: at step {int(steps[k - 1 + np.argmax(mrel)])}")
    else:
        print(f"fewer than {k} steps: no moving-average check")
    if args.weights:
        compare_weights(*args.weights)
    if args.plot:
        plot(args.plot, steps, lg, lt, rel, mg, mt, mrel, k, args.compare)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def compare_weights(a, b):
    from safetensors.numpy import load_file
    wa, wb = load_file(a), load_file(b)
    common = sorted(set(wa) & set(wb))
    if set(wa) != set(wb):
        print(f"warning: {len(set(wa) ^ set(wb))} tensor names differ; comparing {len(common)}")
    worst = []
    num = den = 0.0
    for nme in common:
        x, y = wa[nme].astype(np.float64), wb[nme].astype(np.float64)
        if x.shape != y.shape:
            print(f"  {nme}: shapes {x.shape} vs {y.shape}")
            continue
        dn, yn = np.linalg.norm(x - y), np.linalg.norm(y)
        num, den = num + dn ** 2, den + yn ** 2
        worst.append((dn / max(yn, 1e-30), nme))
    worst.sort(reverse=True)
    print(f"weights: global relative L2 difference {math.sqrt(num / max(den, 1e-30)):.3g}; largest per tensor: "
          + ", ".join(f"{n} {r:.3g}" for r, n in worst[:3]))


def short(path):
    p = os.path.abspath(path)
    return os.path.join(os.path.basename(os.path.dirname(p)), os.path.basename(p))


def plot(path, steps, lg, lt, rel, mg, mt, mrel, k, names):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install matplotlib): no plot", file=sys.stderr)
        return
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 7), sharex=True, gridspec_kw=dict(height_ratios=[2, 1]))
    a1.plot(steps, lg, color="tab:blue", alpha=0.35, lw=0.8, label=f"gpugen ({short(names[0])})")
    a1.plot(steps, lt, color="tab:orange", alpha=0.35, lw=0.8, label=f"PyTorch ({short(names[1])})")
    if len(mg):
        a1.plot(steps[k - 1:], mg, color="tab:blue", lw=1.8, label=f"gpugen ({k}-step mean)")
        a1.plot(steps[k - 1:], mt, color="tab:orange", lw=1.8, ls="--", label=f"PyTorch ({k}-step mean)")
    a1.set_yscale("log")
    a1.set_ylabel("training loss (MSE)")
    a1.set_title("Training parity: gpugen vs PyTorch/diffusers (same init, batches, timesteps, noise)")
    a1.legend()
    a1.grid(alpha=0.3, which="both")
    a2.plot(steps, np.maximum(rel, 1e-12), color="tab:gray", lw=0.8, label="per step")
    if len(mrel):
        a2.plot(steps[k - 1:], np.maximum(mrel, 1e-12), color="tab:red", lw=1.5, label=f"{k}-step mean")
    a2.set_yscale("log")
    a2.set_xlabel("step")
    a2.set_ylabel("|gpugen − torch| / torch")
    a2.legend()
    a2.grid(alpha=0.3, which="both")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


# ---------------------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_argument_group("modes")
    mode.add_argument("--init", metavar="DIR", help="train from gpugen's --steps 0 output (or a pipeline folder)")
    mode.add_argument("--make-init", metavar="DIR", help="write an initial checkpoint with diffusers and exit")
    mode.add_argument("--compare", nargs=2, metavar=("GPUGEN_LOG", "TORCH_LOG"), help="compare two logs")
    tr = ap.add_argument_group("training (mirror gpugen's arguments)")
    tr.add_argument("--steps", type=int, default=200)
    tr.add_argument("--batch-size", type=int, default=64)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--lr", type=float, default=1e-4)
    tr.add_argument("--warmup", type=int, default=0, help="linear warmup steps: lr·min(1, (s+1)/warmup)")
    tr.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant")
    tr.add_argument("--clip-grad", type=float, default=1.0, help="global-norm clipping (0: off)")
    tr.add_argument("--weight-decay", type=float, default=0.0)
    tr.add_argument("--prediction", choices=["epsilon", "v"], default="epsilon")
    tr.add_argument("--ema-decay", type=float, default=0.9999)
    tr.add_argument("--ema-warmup", action="store_true")
    tr.add_argument("--ema-inv-gamma", type=float, default=1.0)
    tr.add_argument("--ema-power", type=float, default=0.75)
    tr.add_argument("--threads", type=int, default=2)
    tr.add_argument("--out", default="train_parity_out")
    tr.add_argument("--data", default=DATA_DIR, help="folder with the Fashion-MNIST IDX files")
    tr.add_argument("--limit", type=int, default=0, help="use only the first N images (testing; gpugen uses all)")
    tr.add_argument("--libm", choices=["libm", "f64", "f32"], default="libm",
                    help="log/cos/sin of the noise (see Tools/gpugen_random.py); libm = bit-identical to gpugen CPU")
    tr.add_argument("--verbose", action="store_true")
    mi = ap.add_argument_group("--make-init")
    mi.add_argument("--config", default=os.path.join(REPO, "Benchmarks", "unet", "config.json"))
    mi.add_argument("--class-conditional", action="store_true", help="add num_class_embeds 10")
    cp = ap.add_argument_group("--compare")
    cp.add_argument("--plot", metavar="PNG")
    cp.add_argument("--weights", nargs=2, metavar=("GPUGEN_ST", "TORCH_ST"),
                    help="also compare two safetensors files (e.g. the raw weights after the last step)")
    cp.add_argument("--tol-first", type=float, default=1e-3)
    cp.add_argument("--tol-ma", type=float, default=0.03)
    cp.add_argument("--ma-window", type=int, default=20)
    args = ap.parse_args()
    if args.make_init:
        return make_init(args)
    if args.compare:
        return compare(args)
    if not args.init:
        ap.error("give --init DIR, --make-init DIR or --compare GPUGEN_LOG TORCH_LOG")
    return train(args)


if __name__ == "__main__":
    sys.exit(main() or 0)
