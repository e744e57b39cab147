#!/usr/bin/env python3
"""Reference fixtures for gpugen's AutoencoderKL port (diffusers' VAE of Stable Diffusion).

Forward fixtures: three tiny AutoencoderKL configs with seeded random weights (every parameter,
norms included, so a wrong mapping changes the outputs), each saved with
save_pretrained(safe_serialization=True) into its own folder (config.json +
diffusion_pytorch_model.safetensors, F32) plus io.safetensors (F32):

  x       (2, C, H, W) input images
  mean    latent_dist.mean of encode(x)
  logvar  latent_dist.logvar of encode(x) (clamped to [-30, 20] by diffusers)
  z       (2, latent_channels, h, w) latents
  decoded decode(z).sample

  attn      3 channels, 32 px, mid-block attention, quant_conv + post_quant_conv
  noattn28  1 channel, 28 px, mid_block_add_attention false, three blocks (28 -> 14 -> 7),
            layers_per_block 2, 8 groups of 1-2 channels
  noquant   1 channel, 32 px, use_quant_conv false (post_quant_conv kept), non-default
            scaling_factor / shift_factor / force_upcast

Gradient fixture (folder grad/): a small model with attention and both quant convs, saved the same
way, and grad.safetensors (F32) with x, r, r2, loss and the float64 gradients of
  loss = sum(decode(mean) * r) + sum(logvar * r2),   (mean, logvar) = encode(x)
with respect to every parameter (grad.<name>) and the input (grad_x), computed in float64 on the
float32 weights; metadata "loss_f64". It prints PyTorch float32's own error against float64 per
tensor (a baseline for the Swift test's tolerance).

Run from anywhere:  python3 make_fixtures.py   (torch 2.15, diffusers 0.42.1, CPU)
"""
import json
import os
import sys

import torch
from diffusers import AutoencoderKL
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))


def blocks(n):
    return dict(down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n)


CONFIGS = {
    "attn": dict(
        in_channels=3, out_channels=3, sample_size=32, block_out_channels=(8, 16), layers_per_block=1,
        latent_channels=4, norm_num_groups=4, mid_block_add_attention=True, **blocks(2),
    ),
    "noattn28": dict(
        in_channels=1, out_channels=1, sample_size=28, block_out_channels=(8, 16, 16), layers_per_block=2,
        latent_channels=2, norm_num_groups=8, mid_block_add_attention=False, **blocks(3),
    ),
    "noquant": dict(
        in_channels=1, out_channels=1, sample_size=32, block_out_channels=(8, 16), layers_per_block=1,
        latent_channels=3, norm_num_groups=2, use_quant_conv=False, use_post_quant_conv=True,
        scaling_factor=0.3611, shift_factor=0.1159, force_upcast=False, **blocks(2),
    ),
}

GRAD_CONFIG = dict(
    in_channels=2, out_channels=2, sample_size=8, block_out_channels=(8, 12), layers_per_block=1,
    latent_channels=2, norm_num_groups=4, mid_block_add_attention=True, **blocks(2),
)


def randomise(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Norm weights 1 + N(0, 0.2), biases N(0, 0.1), kernels / matrices N(0, clamp(1.4/sqrt(fan_in),
    0.05, 0.2)) (as ../unet/make_fixtures.py)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif p.dim() >= 2:
                std = min(0.2, max(0.05, 1.4 / p[0].numel() ** 0.5))
                p.copy_(std * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


def latent_side(cfg):
    return cfg["sample_size"] // 2 ** (len(cfg["block_out_channels"]) - 1)


def forward_fixtures(summary):
    for i, (name, cfg) in enumerate(CONFIGS.items()):
        gen = torch.Generator().manual_seed(3000 + i)
        model = AutoencoderKL(**cfg).float().eval()
        randomise(model, gen)
        out_dir = os.path.join(HERE, name)
        model.save_pretrained(out_dir, safe_serialization=True)
        s, c, lc = cfg["sample_size"], cfg["in_channels"], cfg["latent_channels"]
        x = torch.rand(2, c, s, s, generator=gen) * 2 - 1
        h = latent_side(cfg)
        z = torch.randn(2, lc, h, h, generator=gen)
        with torch.no_grad():
            dist = model.encode(x).latent_dist
            decoded = model.decode(z).sample
        tensors = dict(x=x, mean=dist.mean, logvar=dist.logvar, z=z, decoded=decoded)
        save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out_dir, "io.safetensors"),
                  metadata={"note": "mean, logvar = encode(x).latent_dist; decoded = decode(z).sample"})
        summary[name] = dict(
            params=sum(p.numel() for p in model.parameters()),
            **{k: float(v.abs().max()) for k, v in tensors.items() if k != "x"},
        )


def loss_and_grads(model, x, r, r2):
    x = x.clone().requires_grad_(True)
    model.zero_grad(set_to_none=True)
    dist = model.encode(x).latent_dist
    loss = (model.decode(dist.mean).sample * r).sum() + (dist.logvar * r2).sum()
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    return loss.detach(), x.grad.detach().clone(), grads


def grad_fixture(summary):
    gen = torch.Generator().manual_seed(4242)
    cfg = GRAD_CONFIG
    model32 = AutoencoderKL(**cfg).float().eval()
    randomise(model32, gen)
    out_dir = os.path.join(HERE, "grad")
    model32.save_pretrained(out_dir, safe_serialization=True)
    s, c, lc, h = cfg["sample_size"], cfg["in_channels"], cfg["latent_channels"], latent_side(cfg)
    x = torch.rand(2, c, s, s, generator=gen) * 2 - 1
    r = torch.randn(2, c, s, s, generator=gen)
    r2 = torch.randn(2, lc, h, h, generator=gen)

    model64 = AutoencoderKL(**cfg).eval()
    model64.load_state_dict(model32.state_dict())
    model64 = model64.double()
    loss64, gx64, g64 = loss_and_grads(model64, x.double(), r.double(), r2.double())
    loss32, gx32, g32 = loss_and_grads(model32, x, r, r2)

    tensors = dict(x=x, r=r, r2=r2, loss=loss64.float().reshape(1), grad_x=gx64.float())
    for n, g in g64.items():
        tensors[f"grad.{n}"] = g.float()
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out_dir, "grad.safetensors"),
              metadata={"loss_f64": repr(loss64.item())})

    def rel(a, b):
        return float((a.double() - b).abs().max() / b.abs().max().clamp_min(1e-300))

    zero = [n for n in g64 if float(g64[n].abs().max()) < 1e-12]
    baseline = {n: rel(g32[n], g64[n]) for n in g64 if n not in zero}
    baseline["<x>"] = rel(gx32, gx64)
    summary["grad"] = dict(
        params=sum(p.numel() for p in model32.parameters()), tensors=len(g64), loss64=loss64.item(),
        loss32_rel_err=abs(loss32.item() - loss64.item()) / abs(loss64.item()),
        grad_absmax=max(float(g.abs().max()) for g in g64.values()),
        smallest_nonzero_grad_absmax=min(float(g64[n].abs().max()) for n in baseline if n != "<x>"),
        zero_grads=zero,
        zero_grad_f32_abs_err=max([float((g32[n].double() - g64[n]).abs().max()) for n in zero], default=0.0),
        torch_f32_worst_rel=sorted(baseline.items(), key=lambda kv: -kv[1])[:4],
    )


def main() -> None:
    torch.set_num_threads(1)
    summary = {}
    forward_fixtures(summary)
    grad_fixture(summary)
    import diffusers
    versions = dict(torch=torch.__version__, diffusers=diffusers.__version__)
    print(json.dumps(dict(**versions, models=summary), indent=1))


if __name__ == "__main__":
    sys.exit(main())
