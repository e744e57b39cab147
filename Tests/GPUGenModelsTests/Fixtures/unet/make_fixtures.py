#!/usr/bin/env python3
"""Reference fixtures for gpugen's UNet2DModel port.

Builds three tiny diffusers UNet2DModel configs with fixed seeds, randomises every
parameter (so a wrong parameter mapping changes the output), saves each with
save_pretrained (config.json + diffusion_pytorch_model.safetensors, F32) and writes
io.safetensors with inputs and fp32 reference outputs.

Run from this folder (or anywhere):  python3 make_fixtures.py
"""
import json
import os
import sys

import torch
from diffusers import UNet2DModel
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))

CONFIGS = {
    # 1. plain resnets/down/up samplers, mid block without attention
    "noattn": dict(
        sample_size=16, in_channels=3, out_channels=3,
        block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        add_attention=False, norm_num_groups=4,
    ),
    # 2. attention at two resolutions + mid attention, non-default time-embedding fields
    "attn2": dict(
        sample_size=16, in_channels=1, out_channels=1,
        block_out_channels=(8, 16, 16), layers_per_block=2,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=8, norm_num_groups=4, add_attention=True,
        flip_sin_to_cos=False, freq_shift=1, downsample_padding=1,
    ),
    # 3. class-conditional (nn.Embedding class embedding), 4 heads, norm_eps 1e-6
    "classcond": dict(
        sample_size=8, in_channels=1, out_channels=1,
        block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        num_class_embeds=10, norm_num_groups=4, attention_head_dim=4, norm_eps=1e-6,
    ),
}


def randomise(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Every parameter gets non-trivial random values.

    Norm weights: 1 + N(0, 0.2) (so they are neither 1 nor ~0); everything else N(0, std)
    with std 0.1 for biases / embeddings and a fan-in aware std for weight matrices and
    convolution kernels (clamped to [0.05, 0.2]) so activations stay O(1).
    """
    with torch.no_grad():
        for name, p in model.named_parameters():
            is_norm = "norm" in name
            if is_norm and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif p.dim() >= 2 and not name.startswith("class_embedding"):
                fan_in = p[0].numel()
                std = min(0.2, max(0.05, 1.4 / fan_in ** 0.5))
                p.copy_(std * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


def main() -> None:
    torch.manual_seed(1234)
    torch.set_num_threads(1)
    summary = {}
    for i, (name, cfg) in enumerate(CONFIGS.items()):
        gen = torch.Generator().manual_seed(1000 + i)
        model = UNet2DModel(**cfg).float().eval()
        randomise(model, gen)
        out_dir = os.path.join(HERE, name)
        model.save_pretrained(out_dir, safe_serialization=True)

        s = cfg["sample_size"]
        x = torch.randn(2, cfg["in_channels"], s, s, generator=gen)
        t_int = torch.tensor([10, 999], dtype=torch.long)
        t_float = torch.tensor([10.5, 500.25], dtype=torch.float32)
        labels = torch.tensor([3, 7], dtype=torch.long) if cfg.get("num_class_embeds") else None
        with torch.no_grad():
            out_int = model(x, t_int, class_labels=labels).sample
            out_float = model(x, t_float, class_labels=labels).sample
            # scalar timestep, broadcast over the batch
            out_scalar = model(x, 250, class_labels=labels).sample
        tensors = {
            "sample": x.contiguous(),
            "timestep": t_int.float(),
            "output": out_int.contiguous(),
            "timestep_float": t_float,
            "output_float": out_float.contiguous(),
            "timestep_scalar": torch.tensor([250.0]),
            "output_scalar": out_scalar.contiguous(),
        }
        if labels is not None:
            tensors["class_labels"] = labels.float()
        save_file(tensors, os.path.join(out_dir, "io.safetensors"),
                  metadata={"note": "timestep/class_labels stored as float32; output = model(sample, timestep, class_labels).sample"})
        nparams = sum(p.numel() for p in model.parameters())
        summary[name] = dict(params=nparams, out_std=float(out_int.std()), out_absmax=float(out_int.abs().max()),
                             int_vs_float_diff=float((out_int - out_float).abs().max()))
    import diffusers
    print(json.dumps(dict(torch=torch.__version__, diffusers=diffusers.__version__, models=summary), indent=1))


if __name__ == "__main__":
    sys.exit(main())
