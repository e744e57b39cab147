#!/usr/bin/env python3
"""Train gpugen's default model: a small class-conditional diffusers UNet2DModel on Fashion-MNIST.

DDPM objective (epsilon prediction, linear betas 1e-4..0.02, T=1000), AdamW with linear warm-up,
batch 64, EMA of the weights (the EMA weights are what gets exported). Images are 28x28, used
directly (no padding: 28 -> 14 -> 7), scaled to [-1, 1]. Labels 0..9 (Fashion-MNIST classes).

Data: the IDX files of Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist, .gz or not).

Usage
  python3 Tools/train_default_model.py                 # fresh run (refuses to overwrite an existing ckpt)
  python3 Tools/train_default_model.py --resume        # continue from <workdir>/ckpt.pt
  python3 Tools/train_default_model.py --export DIR    # write a DDPMPipeline folder from the EMA weights (F16)
  python3 Tools/train_default_model.py --sample-grid out.png [--model DIR]  # DDIM-50 grid, 1 row per class
  (--export and --sample-grid can be combined; neither trains.)

Long runs: nohup python3 Tools/train_default_model.py --resume >> /work/train/default/nohup.out 2>&1 &
Logs go to <workdir>/train.log; a checkpoint (model, EMA, optimizer, step, RNG/data order) is written
atomically every --ckpt-every seconds and on SIGTERM/SIGINT.
"""
import argparse
import copy
import gzip
import json
import math
import os
import signal
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

DATA_DIR = "/usr/share/datasets/fashion-mnist"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

# The default model. 28x28 input, 3 levels (28, 14, 7), attention only at 7x7.
UNET_CONFIG = dict(
    sample_size=28,
    in_channels=1,
    out_channels=1,
    block_out_channels=(16, 32, 64),
    layers_per_block=1,
    down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    norm_num_groups=8,
    attention_head_dim=32,
    num_class_embeds=10,
)
SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=1e-4,
    beta_end=0.02,
    beta_schedule="linear",
    prediction_type="epsilon",
    variance_type="fixed_small",
    clip_sample=True,
)


def log(path, msg):
    line = time.strftime("%Y-%m-%d %H:%M:%S ") + msg
    print(line, flush=True)
    with open(path, "a") as f:
        f.write(line + "\n")


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(name):
    for cand in (os.path.join(DATA_DIR, name), os.path.join(DATA_DIR, name + ".gz")):
        if os.path.exists(cand):
            return cand
    raise FileNotFoundError(f"{name}(.gz) not in {DATA_DIR}; apt-get install -y dataset-fashion-mnist")


def load_data():
    x = read_idx(find("train-images-idx3-ubyte"))
    y = read_idx(find("train-labels-idx1-ubyte"))
    x = torch.from_numpy(x.astype(np.float32) / 127.5 - 1.0).unsqueeze(1)  # [N,1,28,28] in [-1,1]
    y = torch.from_numpy(y.astype(np.int64))
    return x, y


def make_unet():
    from diffusers import UNet2DModel
    return UNet2DModel(**UNET_CONFIG)


def make_scheduler():
    from diffusers import DDPMScheduler
    return DDPMScheduler(**SCHEDULER_CONFIG)


def atomic_save(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_ema_from_ckpt(ckpt_path):
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    unet = make_unet()
    unet.load_state_dict(ckpt["ema"])
    return unet.eval(), ckpt["step"]


def export(unet, step, out_dir):
    from diffusers import DDPMPipeline
    import diffusers
    unet16 = copy.deepcopy(unet).half().eval()
    pipe = DDPMPipeline(unet=unet16, scheduler=make_scheduler())
    pipe.save_pretrained(out_dir, safe_serialization=True)
    for root, _, files in os.walk(out_dir):
        for fn in files:
            os.chmod(os.path.join(root, fn), 0o644)
    info = dict(
        what="gpugen default model: class-conditional DDPM on Fashion-MNIST (EMA weights, stored as F16)",
        step=step, batch_size=64, image_size=28, pixel_range=[-1, 1], classes=CLASSES,
        torch=torch.__version__, diffusers=diffusers.__version__,
        note="DDPMPipeline does not pass class_labels; call unet(x, t, class_labels=...) in your own loop.",
    )
    with open(os.path.join(out_dir, "gpugen_model_info.json"), "w") as f:
        json.dump(info, f, indent=2)


@torch.inference_mode()
def sample_grid(unet, out_png, steps=50, per_class=1, seed=0):
    from diffusers import DDIMScheduler
    from PIL import Image
    unet = unet.float().eval()
    sched = DDIMScheduler.from_config(make_scheduler().config)
    sched.set_timesteps(steps)
    n = 10 * per_class
    labels = torch.arange(10).repeat_interleave(per_class)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 28, 28, generator=g)
    for t in sched.timesteps:
        eps = unet(x, t, class_labels=labels).sample
        x = sched.step(eps, t, x).prev_sample
    img = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[:, 0].numpy()  # [n,28,28]
    # rows = classes, columns = samples per class; 2 px gutter, scaled x3
    pad = 2
    H = 10 * (28 + pad) + pad
    W = per_class * (28 + pad) + pad
    canvas = np.full((H, W), 64, np.uint8)
    for i in range(n):
        r, c = divmod(i, per_class)
        canvas[pad + r * (28 + pad): pad + r * (28 + pad) + 28, pad + c * (28 + pad): pad + c * (28 + pad) + 28] = img[i]
    Image.fromarray(canvas).resize((W * 3, H * 3), Image.NEAREST).save(out_png)


def train(args):
    torch.set_num_threads(args.threads)
    os.makedirs(args.workdir, exist_ok=True)
    log_path = os.path.join(args.workdir, "train.log")
    ckpt_path = os.path.join(args.workdir, "ckpt.pt")

    x_all, y_all = load_data()
    N = x_all.shape[0]
    sched = make_scheduler()
    alphas_cumprod = sched.alphas_cumprod.float()
    sqrt_ac = alphas_cumprod.sqrt()
    sqrt_1m_ac = (1 - alphas_cumprod).sqrt()
    T = SCHEDULER_CONFIG["num_train_timesteps"]

    unet = make_unet().train()
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=args.lr, betas=(0.9, 0.999), weight_decay=args.weight_decay)
    gen = torch.Generator().manual_seed(args.seed)
    step, perm, pos = 0, None, 0
    nparams = sum(p.numel() for p in unet.parameters())

    if args.resume:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        unet.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["opt"])
        step, perm, pos = ckpt["step"], ckpt["perm"], ckpt["pos"]
        gen.set_state(ckpt["gen_state"])
        torch.set_rng_state(ckpt["torch_rng"])
        log(log_path, f"resumed from {ckpt_path} at step {step}")
    elif os.path.exists(ckpt_path):
        sys.exit(f"{ckpt_path} exists; use --resume (or move it away)")
    else:
        log(log_path, f"fresh run: params={nparams} unet={json.dumps(UNET_CONFIG)} sched={json.dumps(SCHEDULER_CONFIG)} "
                      f"lr={args.lr} warmup={args.warmup} bs={args.batch_size} ema={args.ema_decay} threads={args.threads} "
                      f"torch={torch.__version__}")

    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def save():
        atomic_save(dict(model=unet.state_dict(), ema=ema.state_dict(), opt=opt.state_dict(), step=step,
                         perm=perm, pos=pos, gen_state=gen.get_state(), torch_rng=torch.get_rng_state(),
                         unet_config=UNET_CONFIG, scheduler_config=SCHEDULER_CONFIG, args=vars(args)), ckpt_path)

    ema_params = list(ema.parameters())
    params = list(unet.parameters())
    last_ckpt = time.time()
    t_log = time.time()
    loss_acc, n_acc = 0.0, 0
    bs = args.batch_size
    while step < args.max_steps and not stop["flag"]:
        if perm is None or pos + bs > N:
            perm, pos = torch.randperm(N, generator=gen), 0
        idx = perm[pos:pos + bs]
        pos += bs
        x0, y = x_all[idx], y_all[idx]
        t = torch.randint(0, T, (bs,), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        xt = sqrt_ac[t].view(-1, 1, 1, 1) * x0 + sqrt_1m_ac[t].view(-1, 1, 1, 1) * noise

        lr = args.lr * min(1.0, (step + 1) / args.warmup)
        for gparam in opt.param_groups:
            gparam["lr"] = lr
        pred = unet(xt, t, class_labels=y).sample
        loss = F.mse_loss(pred, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, args.grad_clip)
        opt.step()
        step += 1
        with torch.no_grad():
            d = min(args.ema_decay, (1 + step) / (10 + step))
            torch._foreach_lerp_(ema_params, params, 1 - d)

        loss_acc += loss.item()
        n_acc += 1
        if step % args.log_every == 0:
            now = time.time()
            log(log_path, f"step {step} loss {loss_acc / n_acc:.5f} s/step {(now - t_log) / n_acc:.3f} lr {lr:.2e} "
                          f"epoch {step * bs / N:.2f}")
            t_log, loss_acc, n_acc = now, 0.0, 0
        if time.time() - last_ckpt >= args.ckpt_every:
            save()
            last_ckpt = time.time()
    save()
    log(log_path, f"checkpoint saved at step {step} ({'signal' if stop['flag'] else 'max steps'})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/work/train/default")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--export", metavar="DIR")
    ap.add_argument("--sample-grid", metavar="PNG")
    ap.add_argument("--model", metavar="DIR", help="for --sample-grid: an exported pipeline folder instead of the checkpoint")
    ap.add_argument("--per-class", type=int, default=1)
    ap.add_argument("--ddim-steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--ema-decay", type=float, default=0.999)
    ap.add_argument("--max-steps", type=int, default=10**9)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--ckpt-every", type=float, default=300.0, help="seconds")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    if args.export or args.sample_grid:
        torch.set_num_threads(args.threads)
        if args.model:
            from diffusers import UNet2DModel
            unet, step = UNet2DModel.from_pretrained(os.path.join(args.model, "unet"), torch_dtype=torch.float32), None
        else:
            unet, step = load_ema_from_ckpt(os.path.join(args.workdir, "ckpt.pt"))
        if args.export:
            export(unet, step, args.export)
            print(f"exported step {step} to {args.export}")
        if args.sample_grid:
            sample_grid(unet, args.sample_grid, steps=args.ddim_steps, per_class=args.per_class)
            print(f"wrote {args.sample_grid}")
        return
    train(args)


if __name__ == "__main__":
    main()
