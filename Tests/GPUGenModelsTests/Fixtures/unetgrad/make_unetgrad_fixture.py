#!/usr/bin/env python3
"""Reference gradients of a whole diffusers UNet2DModel for gpugen's autograd.

Builds a tiny but complete UNet2DModel (conv_in, time + class embedding, a DownBlock2D and an
AttnDownBlock2D, the mid block with attention, an AttnUpBlock2D and an UpBlock2D, conv_norm_out,
conv_out), randomises every parameter in float32 with a fixed seed, then runs it in float64
(`.double()` of the float32 values, so both frameworks see exactly the same weights) on a batch of 3
inputs with timesteps and class labels, loss = mean((out - target)^2) with a fixed target, and
back-propagates in float64.

Writes, next to this script:
  config.json            the model config (UNet2DConfig reads it)
  grad.safetensors       F32: param.<name> (the weights), grad.<name> (d loss / d weight, float64
                         gradients rounded to float32), sample, timestep, class_labels (as float32),
                         target, loss, grad_sample (d loss / d sample); metadata "loss_f64" (repr)

It also runs the same model in float32 PyTorch and prints, per tensor, max|g32 - g64| / max|g64|:
the error a float32 implementation makes on this fixture (a baseline for the test's tolerance).

Run from anywhere:  python3 make_unetgrad_fixture.py
"""
import json
import os
import sys

import torch
from diffusers import UNet2DModel
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))

CONFIG = dict(
    sample_size=8, in_channels=2, out_channels=2,
    block_out_channels=(8, 12), layers_per_block=1,
    down_block_types=("DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    norm_num_groups=4, attention_head_dim=6, num_class_embeds=3,
)


def randomise(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Same scheme as ../unet/make_fixtures.py: norm weights 1 + N(0, 0.2), biases and embeddings
    N(0, 0.1), weight matrices / kernels N(0, clamp(1.4/sqrt(fan_in), 0.05, 0.2))."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif p.dim() >= 2 and not name.startswith("class_embedding"):
                std = min(0.2, max(0.05, 1.4 / p[0].numel() ** 0.5))
                p.copy_(std * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


def loss_and_grads(model, x, t, labels, target):
    x = x.clone().requires_grad_(True)
    model.zero_grad(set_to_none=True)
    out = model(x, t, class_labels=labels).sample
    loss = ((out - target) ** 2).mean()
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    return loss.detach(), x.grad.detach().clone(), grads


def main() -> None:
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(2024)
    model32 = UNet2DModel(**CONFIG).float().eval()
    randomise(model32, gen)
    s, c = CONFIG["sample_size"], CONFIG["in_channels"]
    x = torch.randn(3, c, s, s, generator=gen)
    target = torch.randn(3, CONFIG["out_channels"], s, s, generator=gen)
    t = torch.tensor([3, 500, 999], dtype=torch.long)
    # class 2 twice (gradients of a table row accumulate), class 1 unused (its row's gradient is 0)
    labels = torch.tensor([2, 0, 2], dtype=torch.long)

    model64 = UNet2DModel(**CONFIG).eval()
    model64.load_state_dict(model32.state_dict())
    model64 = model64.double()
    for (n, p32), p64 in zip(model32.named_parameters(), model64.parameters()):
        assert torch.equal(p32.double(), p64), n

    loss64, gx64, g64 = loss_and_grads(model64, x.double(), t, labels, target.double())
    loss32, gx32, g32 = loss_and_grads(model32, x, t, labels, target)

    model32.save_config(HERE)
    tensors = {
        "sample": x, "timestep": t.float(), "class_labels": labels.float(), "target": target,
        "loss": loss64.float().reshape(1), "grad_sample": gx64.float(),
    }
    for n, p in model32.named_parameters():
        tensors[f"param.{n}"] = p.detach()
        tensors[f"grad.{n}"] = g64[n].float()
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(HERE, "grad.safetensors"),
              metadata={"loss_f64": repr(loss64.item())})

    def rel(a, b):
        return float((a.double() - b).abs().max() / b.abs().max().clamp_min(1e-300))

    # attention to_k.bias: exactly zero in exact arithmetic (softmax ignores the shift q.b_k), so
    # report the absolute error there and the relative error elsewhere
    zero = [n for n in g64 if float(g64[n].abs().max()) < 1e-12]
    baseline = {n: rel(g32[n], g64[n]) for n in g64 if n not in zero}
    baseline["<sample>"] = rel(gx32, gx64)
    worst = sorted(baseline.items(), key=lambda kv: -kv[1])[:4]
    zero_abs = max(float((g32[n].double() - g64[n]).abs().max()) for n in zero)
    import diffusers
    print(json.dumps(dict(
        torch=torch.__version__, diffusers=diffusers.__version__,
        params=sum(p.numel() for p in model32.parameters()), tensors=len(g64),
        loss64=loss64.item(), loss32_rel_err=abs(loss32.item() - loss64.item()) / loss64.item(),
        grad_absmax=max(float(g.abs().max()) for g in g64.values()),
        zero_grads=zero, smallest_nonzero_grad_absmax=min(float(g64[n].abs().max()) for n in baseline
                                                          if n != "<sample>"),
        torch_f32_worst_rel=worst, torch_f32_zero_grad_abs_err=zero_abs), indent=1))


if __name__ == "__main__":
    sys.exit(main())
